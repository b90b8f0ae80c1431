"""Crash and resume in every mode: a run checkpointed after round R-1 and resumed reaches the same
final models, bit for bit, as one that ran straight through (sync, FedBuff, FEL, the fairness study);
and ``fedrec train`` killed with SIGKILL mid-run resumes from its last checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from fedrec.algorithms import run_config
from fedrec.config import load_config
from fedrec.runtime import load_federated_data

ROOT = Path(__file__).resolve().parents[2]
# No catalogue ranking at the end (HR@10/nDCG@10 have their own tests): it was most of the time of
# the study modes, whose every arm ranks the whole catalogue for every user.
SHRINK = {"rounds": 3, "clients_per_round": 10, "eval_every": 3, "num_actors": 2, "checkpoint_every": 1,
          "eval_ranking": False}
MODES = {
    "sync": ("ml100k_fedyogi_tuned.yaml", {}),
    "fedbuff": ("ml100k_fedbuff.yaml", {"async": {"buffer_size": 4, "concurrency": 8}}),
    "fel": ("ml100k_fel.yaml", {"ensemble.over_epochs": 2}),
    "fairness": ("ml100k_tiers_rf2.yaml", {"fairness.optimizations": ["deadline", "over_selection"]}),
}


def _states(ckpt: Path) -> dict:
    return {k: v["state"] for k, v in torch.load(ckpt / "checkpoint.pt", weights_only=False)["runs"].items()}


@pytest.mark.parametrize("mode", list(MODES))
def test_resumed_run_equals_uninterrupted(mode, pool, ml100k_path, tmp_path):
    name, extra = MODES[mode]
    cfg = load_config(ROOT / "configs" / name, **{**SHRINK, "data.path": str(ml100k_path), **extra})
    data = load_federated_data(cfg)
    straight = run_config(cfg.with_(checkpoint_dir=str(tmp_path / "a")), data, pool)
    run_config(cfg.with_(rounds=cfg.rounds - 1, checkpoint_dir=str(tmp_path / "b")), data, pool)
    resumed = run_config(cfg.with_(checkpoint_dir=str(tmp_path / "b")), data, pool, resume=True)
    a, b = _states(tmp_path / "a"), _states(tmp_path / "b")
    assert set(a) == set(b) and len(a) >= 1
    for key in a:
        for name_ in a[key]:
            assert torch.equal(a[key][name_], b[key][name_]), (key, name_)
    assert resumed.resumed_from_round == cfg.rounds - 1 and straight.resumed_from_round == 0
    assert resumed.final_auc == straight.final_auc
    for key in ("client_joules", "server_joules", "network_joules"):  # the simulated energy survives the checkpoint
        assert resumed.energy[key] == pytest.approx(straight.energy[key]), key
    assert resumed.energy["host_joules"] > 0


def test_sigkill_mid_run_then_resume(ml100k_path, tmp_path):
    """The driver process itself dies (SIGKILL, no clean-up) after a checkpoint; --resume finishes
    the run and reaches the model of an uninterrupted one."""
    doc = yaml.safe_load((ROOT / "configs" / "ml100k_fedyogi_tuned.yaml").read_text())
    doc.update({"rounds": 6, "clients_per_round": 10, "eval_every": 6, "num_actors": 2, "checkpoint_every": 1,
                "eval_ranking": False})
    doc["data"]["path"] = str(ml100k_path)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own local Ray

    def train(name: str, *extra: str, wait: bool = True):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**doc, "checkpoint_dir": str(tmp_path / name)}))
        cmd = [sys.executable, "-m", "fedrec.cli", "train", "--config", str(path), "--json", str(tmp_path / f"{name}.json"), *extra]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600) if wait else subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    proc = train("killed", wait=False)
    ckpt = tmp_path / "killed" / "checkpoint.pt"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and torch.load(ckpt, weights_only=False)["round"] >= 2:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started, mid-run
            break
        time.sleep(0.2)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = torch.load(ckpt, weights_only=False)["round"]
    assert 2 <= killed_at < 6
    done = train("killed", "--resume")
    assert done.returncode == 0, done.stderr[-2000:]
    straight = train("straight")
    assert straight.returncode == 0, straight.stderr[-2000:]
    resumed, whole = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("killed", "straight"))
    assert resumed["resumed_from_round"] == killed_at and resumed["rounds"] == 6
    a, b = _states(tmp_path / "killed"), _states(tmp_path / "straight")
    for name in a["default"]:
        assert torch.equal(a["default"][name], b["default"][name]), name
    assert resumed["final_auc"] == whole["final_auc"]
