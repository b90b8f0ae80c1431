"""Federated training on Ray, end to end on ML-100K: the JSON contract, fault tolerance, resume,
and a real ``ray job submit`` against a head started on loopback."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray
import torch

from fedrec.config import load_config
from fedrec.server import FederatedServer, load_federated_data

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "ml100k_fedavg.yaml"


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def small_cfg(ml100k_path):
    cfg = load_config(CONFIG)
    return dataclasses.replace(
        cfg, data=dataclasses.replace(cfg.data, path=str(ml100k_path)), rounds=3, clients_per_round=20, eval_every=1, num_actors=2
    )


@pytest.fixture(scope="module")
def fed_data(small_cfg):
    return load_federated_data(small_cfg)


def test_contract_keys_and_sparse_bytes(ray_local, small_cfg, fed_data, tmp_path):
    result = FederatedServer(dataclasses.replace(small_cfg, plot=str(tmp_path / "auc.png")), fed_data).run(progress=False)
    out = tmp_path / "r.json"
    result.to_json(out)
    d = json.loads(out.read_text())
    for key in ("final_auc", "rounds", "client_updates", "wall_seconds", "client_updates_per_second", "bytes_up", "bytes_down", "history"):
        assert key in d
    assert d["rounds"] == 3 and 0 < d["client_updates"] <= 60
    assert len(d["history"]) == 3 and all("auc" in h for h in d["history"])
    assert d["bytes_up"] < d["dense_bytes_up"]
    assert set(d["per_tier_auc"]) <= {"low", "mid", "high"}
    assert (tmp_path / "auc.png").stat().st_size > 0


def test_actor_crash_mid_round_does_not_stop_the_run(ray_local, small_cfg, fed_data):
    cfg = dataclasses.replace(small_cfg, fault_round=2, fault_actor=0, clients_per_round=10, eval_every=3)
    result = FederatedServer(cfg, fed_data).run(progress=False)
    r1, r2, r3 = result.history
    assert r2["failed_updates"] > 0 and r2["client_updates"] > 0  # survivors finished round 2
    assert r3["failed_updates"] == 0 and r3["client_updates"] > 0  # the actor came back
    assert result.rounds == 3


def test_resume_reaches_the_same_model(ray_local, small_cfg, fed_data, tmp_path):
    cfg = dataclasses.replace(small_cfg, clients_per_round=10, eval_every=3)
    straight = FederatedServer(dataclasses.replace(cfg, rounds=3), fed_data)
    straight.run(progress=False)
    ck = dataclasses.replace(cfg, rounds=2, checkpoint_dir=str(tmp_path / "ck"), checkpoint_every=2)
    FederatedServer(ck, fed_data).run(progress=False)
    resumed = FederatedServer(dataclasses.replace(ck, rounds=3), fed_data)
    result = resumed.run(progress=False, resume=True)
    assert result.rounds == 3 and len(result.history) == 3
    for name, tensor in straight.state.items():
        assert torch.equal(tensor, resumed.state[name]), name


@pytest.mark.skipif(shutil.which("ray", path=str(Path(sys.executable).parent)) is None, reason="ray CLI not installed")
def test_ray_job_submit_on_loopback_head(ml100k_path, tmp_path):
    if ray.is_initialized():
        ray.shutdown()
    bin_dir = Path(sys.executable).parent
    # RAY_AUTH_MODE=disabled: Ray 2.60 keeps one auth token per user, which any other Ray instance
    # on the machine may replace; this head listens on loopback only, so the token adds nothing.
    env = {**os.environ, "FEDREC_DATA": str(Path(ml100k_path).parent), "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    temp = Path("/tmp") / f"fedrec-ray-{os.getpid()}"
    dash = "8277"
    start = [str(bin_dir / "ray"), "start", "--head", "--node-ip-address=127.0.0.1", "--port=6390",
             "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", "--num-cpus=2", f"--temp-dir={temp}",
             "--disable-usage-stats"]
    subprocess.run(start, check=True, env=env, capture_output=True, timeout=120)
    try:
        out = tmp_path / "job.json"
        cmd = [str(bin_dir / "ray"), "job", "submit", f"--address=http://127.0.0.1:{dash}", "--",
               str(bin_dir / "fedrec"), "train", "--config", str(CONFIG), "--rounds", "2", "--json", str(out)]
        deadline = time.time() + 120
        not_ready = ("Connection", "try again later", "No available agent")
        while True:  # the job server and its agent take a while to come up after `ray start`
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
            output = proc.stderr + proc.stdout
            if proc.returncode == 0 or time.time() > deadline or not any(m in output for m in not_ready):
                break
            time.sleep(3)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        d = json.loads(out.read_text())
        assert d["rounds"] == 2 and d["client_updates"] > 0
    finally:
        _stop_head(temp)


def _stop_head(temp: Path) -> None:
    """Stop only the Ray processes of the head this test started (their command lines name its temp
    dir): `ray stop` would kill every Ray instance on the machine, other people's runs included."""
    import psutil

    mine = [p for p in psutil.process_iter(["cmdline"]) if any(str(temp) in a for a in (p.info["cmdline"] or []))]
    for p in mine:
        p.terminate()
    _, alive = psutil.wait_procs(mine, timeout=20)
    for p in alive:
        p.kill()
