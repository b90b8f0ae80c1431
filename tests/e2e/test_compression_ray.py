"""Compressed federated training on Ray, end to end on ML-100K: the bytes reported are the bytes
that reach the driver, compressed downloads are priced at their encoded size, error-feedback
memory and the copies clients hold survive a resume bit for bit, and FedBuff runs compressed.
The tests share one actor pool and one load of the data."""

from pathlib import Path

import numpy as np
import pytest
import torch

from fedrec.algorithms import run_config
from fedrec.config import load_config
from fedrec.pipeline import Decompress
from fedrec.pipeline.downlink import DeltaDownloads
from fedrec.runtime import FederatedRun, load_federated_data

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "ml100k_fedyogi_tuned.yaml"


@pytest.fixture(scope="module")
def base(ml100k_path):
    return load_config(CONFIG, rounds=2, clients_per_round=20, eval_every=2, num_actors=2,
                       **{"data.path": str(ml100k_path)})


@pytest.fixture(scope="module")
def fed_data(base):
    return load_federated_data(base)


def test_reported_bytes_are_the_encoded_bytes_that_reach_the_driver(pool, base, fed_data, monkeypatch):
    arrived, downloaded = [], []
    real_decode, real_sum, real_download = Decompress.on_clients, Decompress.sum_clients, DeltaDownloads.download

    def spy_decode(self, updates, ctx):
        arrived.extend(len(u.wire) for u in updates)
        return real_decode(self, updates, ctx)

    def spy_sum(self, updates, ctx):  # the server only averages: the decoded batch is summed
        arrived.extend(len(u.wire) for u in updates)
        return real_sum(self, updates, ctx)

    def spy_download(self, client, state):
        copy = real_download(self, client, state)
        downloaded.append((client, self.last_nbytes))
        return copy

    monkeypatch.setattr(Decompress, "on_clients", spy_decode)
    monkeypatch.setattr(Decompress, "sum_clients", spy_sum)
    monkeypatch.setattr(DeltaDownloads, "download", spy_download)
    cfg = base.with_(**{"client.sparse_downloads": True},
                     compression={"method": "powersgd", "rank": 1, "downlink": "same"})
    result = run_config(cfg, fed_data, pool)
    d = result.to_dict()
    assert len(arrived) == d["client_updates"] > 30
    assert d["bytes_up"] == sum(arrived)  # what the run reports is what crossed from the actors
    assert d["bytes_down"] == sum(n for _, n in downloaded)
    facts = FederatedRun(cfg, fed_data, None).facts  # the simulated clock prices the same sizes
    assert sum(n for _, n in downloaded) == int(facts.down[[c for c, _ in downloaded]].sum())
    assert d["compression_ratio_up"] == pytest.approx(d["dense_bytes_up"] / d["bytes_up"])
    assert d["compression_ratio_up"] > 50 and d["compression_ratio_down"] > 50
    assert d["pipeline"]["encode_seconds"] > 0 and d["pipeline"]["decode_seconds"] > 0
    assert np.isfinite(d["final_auc"])


def test_error_feedback_and_held_copies_survive_a_resume(pool, base, fed_data, tmp_path):
    cfg = base.with_(rounds=3, clients_per_round=60, eval_every=3, checkpoint_every=1,
                     **{"client.sparse_downloads": True},
                     compression={"method": "topk", "fraction": 0.02, "downlink": "same"})

    def trained(c, where, resume=False):
        result = run_config(c.with_(checkpoint_dir=str(where)), fed_data, pool, resume=resume)
        return result, torch.load(where / "checkpoint.pt", weights_only=False)["runs"]["default"]

    straight, blob = trained(cfg, tmp_path / "straight")
    trained(cfg.with_(rounds=2), tmp_path / "ck")
    resumed, resumed_blob = trained(cfg, tmp_path / "ck", resume=True)
    assert resumed.resumed_from_round == 2
    assert len(blob["client_state"]) > 100 and all("residual" in s for s in blob["client_state"].values())
    assert len(blob["downloads"]["held"]) > 100
    for name, t in blob["state"].items():  # residuals and held copies carried over: bit-identical
        assert torch.equal(t, resumed_blob["state"][name]), name


def test_fedbuff_with_compression_and_delta_downloads(pool, base, fed_data):
    cfg = base.with_(mode="fedbuff", rounds=3, **{"async": {"buffer_size": 5, "concurrency": 10},
                                                  "client.sparse_downloads": True},
                     compression={"method": "powersgd", "rank": 1, "downlink": "same"})
    result = run_config(cfg, fed_data, pool)
    assert result.rounds == 3 and result.compression_ratio_up > 50 and result.compression_ratio_down > 50
    assert result.pipeline["decode_seconds"] > 0 and np.isfinite(result.final_auc)
