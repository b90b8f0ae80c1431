"""The CLI's fast exit: a local Ray the process started dies with it, and nothing of it is left."""

import json
import os
import subprocess
import sys
import time

import psutil

SCRIPT = """
import json, os, sys
import psutil, ray
from fedrec.runtime import ray_runtime

ray_runtime.start_ray(1)

@ray.remote(num_cpus=1)
class Worker:
    def pid(self):
        return os.getpid()

actor = Worker.remote()
actor_pid = ray.get(actor.pid.remote())
pids = [p.pid for p in psutil.Process().children(recursive=True)]
print(json.dumps({"actor": actor_pid, "pids": pids, "handed": ray_runtime.hand_local_ray_to_exit()}), flush=True)
ray_runtime.kill_local_ray()
os._exit(0)
"""


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_local_ray_handed_to_the_exit_leaves_no_process_behind():
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["handed"] is True
    assert out["actor"] in out["pids"] and len(out["pids"]) >= 3  # GCS, raylet, the actor's worker, ...
    deadline = time.monotonic() + 10
    while not all(_gone(p) for p in out["pids"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [p for p in out["pids"] if not _gone(p)] == []


def test_a_joined_cluster_is_not_handed_to_the_exit(monkeypatch):
    import ray

    from fedrec.runtime import ray_runtime

    monkeypatch.setattr(ray_runtime, "_started_here", False)
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    assert ray_runtime.hand_local_ray_to_exit() is False
