"""A real ``ray job submit`` of ``fedrec train``, with this repository as the job's working
directory, against a two-node Ray started on loopback (a head and a worker node, as `ray start`
starts them on a cluster); its own module: it needs the in-process Ray shut down."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "ml100k_fedavg.yaml"


@pytest.mark.skipif(shutil.which("ray", path=str(Path(sys.executable).parent)) is None, reason="ray CLI not installed")
def test_ray_job_submit_with_working_dir_on_two_nodes(ml100k_path, tmp_path):
    if ray.is_initialized():
        ray.shutdown()
    bin_dir = Path(sys.executable).parent
    # RAY_AUTH_MODE=disabled: Ray 2.60 keeps one auth token per user, which any other Ray instance
    # on the machine may replace; this head listens on loopback only, so the token adds nothing.
    env = {**os.environ, "FEDREC_DATA": str(Path(ml100k_path).parent), "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    temp = Path("/tmp") / f"fedrec-ray-{os.getpid()}"
    dash = "8277"
    # The dashboard agent's HTTP port is fixed by default (52365): any other Ray on the machine (a
    # benchmark's local ray.init) holds it, the head's agent fails to bind, and no job can be
    # submitted. Each node here gets free ports of its own.
    head_ports, worker_ports = _agent_ports(), _agent_ports()
    start = [str(bin_dir / "ray"), "start", "--head", "--node-ip-address=127.0.0.1", "--port=6390",
             "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", "--num-cpus=1", f"--temp-dir={temp}",
             "--disable-usage-stats", *head_ports]
    # The worker node gets its own temp dir, as on its own machine: sharing the head's, its runtime-env
    # agent re-extracts the same working-dir package under the job driver's feet (its cwd vanishes).
    worker = [str(bin_dir / "ray"), "start", "--address=127.0.0.1:6390", "--node-ip-address=127.0.0.1", "--num-cpus=1",
              f"--temp-dir={temp}-worker", "--disable-usage-stats", *worker_ports]
    subprocess.run(start, check=True, env=env, capture_output=True, timeout=120)
    try:
        subprocess.run(worker, check=True, env=env, capture_output=True, timeout=120)
        out = tmp_path / "job.json"
        runtime_env = json.dumps({"env_vars": {"FEDREC_DATA": str(Path(ml100k_path).parent), "RAY_AUTH_MODE": "disabled"}})
        cmd = [str(bin_dir / "ray"), "job", "submit", f"--address=http://127.0.0.1:{dash}", f"--working-dir={ROOT}",
               f"--runtime-env-json={runtime_env}", "--",
               str(Path(sys.executable)), "-m", "fedrec.cli", "train", "--config", "configs/ml100k_fedavg.yaml",
               "--rounds", "2", "--json", str(out)]
        deadline = time.time() + 300  # a loaded machine can take minutes to start the agent
        not_ready = ("Connection", "try again later", "No available agent")
        while True:  # the job server and its agent take a while to come up after `ray start`
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
            output = proc.stderr + proc.stdout
            if proc.returncode == 0 or time.time() > deadline or not any(m in output for m in not_ready):
                break
            time.sleep(3)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        d = json.loads(out.read_text())
        assert d["rounds"] == 2 and d["client_updates"] > 0
        assert d["nodes"] == 2 and d["actors_per_node"] == [1, 1]  # one actor per node's CPU, spread
    finally:
        _stop_head(temp)


def _agent_ports() -> list[str]:
    """Free ports for a node's dashboard agent (HTTP and gRPC) and runtime-env agent."""
    import socket

    socks = [socket.socket() for _ in range(3)]
    try:
        for sock in socks:
            sock.bind(("", 0))
        http, grpc, env = (sock.getsockname()[1] for sock in socks)
    finally:
        for sock in socks:
            sock.close()
    return [f"--dashboard-agent-listen-port={http}", f"--dashboard-agent-grpc-port={grpc}", f"--runtime-env-agent-port={env}"]


def _stop_head(temp: Path) -> None:
    """Stop only the Ray processes of the head this test started (their command lines name its temp
    dir): `ray stop` would kill every Ray instance on the machine, other people's runs included."""
    import psutil

    mine = [p for p in psutil.process_iter(["cmdline"])
            if any(str(temp) in a or "127.0.0.1:6390" in a for a in (p.info["cmdline"] or []))]
    for p in mine:
        p.terminate()
    _, alive = psutil.wait_procs(mine, timeout=20)
    for p in alive:
        p.kill()
