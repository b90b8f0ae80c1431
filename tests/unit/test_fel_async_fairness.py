"""FEL, FedBuff and RF^2 invariants without Ray: staleness weights, buffer semantics and
concurrency, the server's over-arch data, disjoint clusters, MDAC, and config validation."""

import numpy as np
import pytest
import torch

from data_pipeline.errors import ConfigError
from fedrec.algorithms.fairness import mdac, relative_change
from fedrec.algorithms.fedbuff import simulate, staleness_weight
from fedrec.algorithms.fel import FEL, apportion, carve_server_rows, cluster_clients
from fedrec.algorithms.over_arch import OverArch, top_features
from fedrec.config import AsyncConfig, EnsembleConfig, config_from_dict
from fedrec.model import ModelConfig, build_model, forward_logits
from fedrec.runtime.result import time_to_target
from fedrec.runtime.run import FederatedRun
from fedrec.updates import AggregatedUpdate, ClientUpdate
from tests.factories import NullPool, toy_federated_data


def _fed():
    return toy_federated_data()


def _fel_cfg(**ensemble):
    tiny = [{"embedding_dim": d, "dense_arch": [4], "over_arch": [4]} for d in (2, 4, 8)]
    return config_from_dict({"mode": "fel", "clients_per_round": 6, "rounds": 1, "data": {"features": ["item"]},
                             "ensemble": {"submodels": tiny, "over_epochs": 2, **ensemble}})


# --- FedBuff ---
def test_staleness_weights():
    poly = AsyncConfig()
    assert staleness_weight(0, poly) == 1.0 and staleness_weight(3, poly) == pytest.approx(0.5)
    assert staleness_weight(8, poly.model_copy(update={"staleness_exponent": 1.0})) == pytest.approx(1 / 9)
    assert staleness_weight(100, AsyncConfig(staleness="constant")) == 1.0
    thr = AsyncConfig(staleness="threshold", max_staleness=2)
    assert [staleness_weight(s, thr) for s in range(5)] == [1, 1, 1, 0, 0]


def _schedule(cfg: AsyncConfig, steps=40, n=60, seed=0, dropout=0.1):
    rng = np.random.default_rng(seed)
    times = rng.lognormal(0, 1, size=n)  # a heavy straggler tail
    return simulate(times, np.full(n, dropout), np.arange(n), cfg, steps, seed)


@pytest.mark.parametrize("cfg", [AsyncConfig(buffer_size=5, concurrency=12), AsyncConfig(buffer_size=3, concurrency=30),
                                 AsyncConfig(buffer_size=4, concurrency=10, staleness="threshold", max_staleness=1)])
def test_a_step_every_k_updates_and_concurrency_is_respected(cfg):
    sched = _schedule(cfg)
    assert len(sched.step_times) >= 40 and np.all(np.diff(sched.step_times) >= 0)
    counted = np.bincount([a.step for a in sched.arrivals if 0 <= a.step < 40], minlength=40)
    assert counted.tolist() == [cfg.buffer_size] * 40  # exactly K updates per server step
    for a in sched.arrivals:
        assert a.staleness == a.during - a.pulled >= 0
        if 0 <= a.step < 40:  # counted: lands in the step under way, with its staleness weight
            assert a.step == a.during and a.weight == staleness_weight(a.staleness, cfg) > 0 and not a.dropped
            assert a.end <= sched.step_times[a.step]
            assert a.step == 0 or a.end >= sched.step_times[a.step - 1]
    # the K-th update of each step is the one that closes it
    closers = [max((a for a in sched.arrivals if a.step == j), key=lambda a: a.end).end for j in range(40)]
    assert closers == sched.step_times[:40]
    # max concurrency: at no time do more clients train than allowed
    events = sorted([(a.start, 1) for a in sched.arrivals] + [(a.end, -1) for a in sched.arrivals])
    assert max(np.cumsum([d for _, d in events])) <= cfg.concurrency
    assert sched.max_in_flight == cfg.concurrency
    if cfg.staleness == "threshold":
        stale = [a for a in sched.arrivals if not a.dropped and a.staleness > cfg.max_staleness]
        assert stale and all(a.step == -1 for a in stale)  # discarded, and not counted towards K


def test_a_longer_schedule_replays_the_shorter_one_and_drains_its_clients():
    cfg = AsyncConfig(buffer_size=5, concurrency=12)
    short, long = _schedule(cfg, steps=25), _schedule(cfg, steps=40)
    assert long.arrivals[: len(short.arrivals)] == short.arrivals  # the same events, in the same order
    assert short.step_times == long.step_times[: len(short.step_times)]
    # Every client that pulled one of the 25 versions reported before the short schedule ended.
    pulled_early = [a for a in long.arrivals if a.pulled < 25]
    assert len(pulled_early) == sum(a.pulled < 25 for a in short.arrivals)


def test_no_client_trains_twice_at_once_and_dropouts_never_count():
    sched = _schedule(AsyncConfig(buffer_size=2, concurrency=20), n=25, dropout=0.3)
    assert any(a.dropped for a in sched.arrivals) and all(a.step == -1 for a in sched.arrivals if a.dropped)
    by_client = {}
    for a in sched.arrivals:
        by_client.setdefault(a.client, []).append((a.start, a.end))
    for spans in by_client.values():
        spans.sort()
        assert all(e1 <= s2 for (_, e1), (s2, _) in zip(spans, spans[1:]))


def test_slow_clients_are_staler():
    times = np.r_[np.full(40, 1.0), np.full(10, 8.0)]  # 10 stragglers, 8x slower
    sched = simulate(times, np.zeros(50), np.arange(50), AsyncConfig(buffer_size=5, concurrency=20), 30, 0)
    fast = [a.staleness for a in sched.arrivals if a.step >= 0 and a.client < 40]
    slow = [a.staleness for a in sched.arrivals if a.step >= 0 and a.client >= 40]
    assert np.mean(slow) > 3 * np.mean(fast)


def test_time_to_target():
    hist = [{"round": 1, "sim_seconds": 1.0, "bytes_up": 1, "bytes_down": 10, "auc": 0.55},
            {"round": 2, "sim_seconds": 2.0, "bytes_up": 2, "bytes_down": 10},
            {"round": 3, "sim_seconds": 3.0, "bytes_up": 3, "bytes_down": 10, "auc": 0.61}]
    assert time_to_target(hist, 0.6) == (3, 3.0, 36) and time_to_target(hist, 0.7) == (None, None, None)


# --- FEL ---
def test_server_rows_are_carved_from_training_rows_only():
    data = _fed()
    carved, server = carve_server_rows(data, 0.25, exclusive=True, seed=0)
    client_rows = np.concatenate(carved.partitions)
    assert len(server) and not np.intersect1d(server, client_rows).size
    assert np.array_equal(np.sort(np.r_[server, client_rows]), np.sort(np.concatenate(data.partitions)))
    assert all(len(p) >= 1 for p in carved.partitions)
    shared, server2 = carve_server_rows(data, 0.25, exclusive=False, seed=0)
    assert np.array_equal(server, server2) and all(np.array_equal(a, b) for a, b in zip(shared.partitions, data.partitions))


@pytest.mark.parametrize("method", ["tier", "data", "random"])
def test_clusters_partition_the_clients(method):
    data = _fed()
    tiers = np.arange(len(data.partitions)) % 3
    clusters = cluster_clients(method, 3, tiers, data, seed=0)
    assert clusters.shape == (len(data.partitions),) and set(clusters.tolist()) == {0, 1, 2}
    if method == "tier":
        assert np.array_equal(clusters, tiers)
    if method == "random":
        assert np.bincount(clusters).tolist() == [10, 10, 10]


def _fel(cfg=None):
    data, server_rows = carve_server_rows(_fed(), 0.1, True, 0)
    return FEL(cfg or _fel_cfg(), data, server_rows, None)  # the server side alone: the driver scores


def test_fel_sub_runs_own_disjoint_clients_and_share_the_round_budget():
    fel = _fel(_fel_cfg(clustering="data"))
    members = [set(s.clients.tolist()) for s in fel.subs]
    assert sum(len(m) for m in members) == len(fel.data.partitions)  # every client in exactly one cluster
    assert set().union(*members) == set(range(len(fel.data.partitions)))
    assert sum(s.cfg.clients_per_round for s in fel.subs) == 6 == fel.baseline.cfg.clients_per_round
    assert [s.cfg.model.embedding_dim for s in fel.subs] == [2, 4, 8] and fel.baseline.cfg.model.embedding_dim == 2
    assert len({s.key for s in fel.runs}) == 4  # each run its own model on the shared pool
    assert apportion(10, np.array([5, 3, 2])).tolist() == [5, 3, 2] and apportion(7, np.array([1, 1, 1])).sum() == 7


def _row_keys(ex):
    return {(int(g), int(t), int(i)) for g, t, i in zip(ex.groups, ex.timestamps, ex.values["item"])}


def test_over_arch_is_trained_on_server_rows_only(monkeypatch):
    import fedrec.algorithms.fel as fel_module

    fel = _fel()
    seen, trained = [], []
    real, real_train = fel_module.ensemble_inputs, fel_module.train_over_arch
    monkeypatch.setattr(fel_module, "ensemble_inputs", lambda models, ex, *a: seen.append(ex) or real(models, ex, *a))
    monkeypatch.setattr(fel_module, "train_over_arch", lambda x, y, *a: trained.append(len(y)) or real_train(x, y, *a))
    for run in fel.runs:  # one (untrained) round on the record, as the round loop leaves it
        run.round = 1
        run.history = [{"round": 1, "sim_round_seconds": 1.0, "sim_seconds": 1.0, "wall_seconds": 0.1, "client_updates": 0,
                        "failed_updates": 0, "bytes_up": 0, "bytes_down": 0, **run.evaluate()}]
    result = fel.result(wall=1.0)
    over_rows = _row_keys(seen[0])  # the first call builds the over-arch's training set
    assert trained[0] == len(fel.server_rows) == len(seen[0]) == result.server_rows
    assert over_rows == _row_keys(fel.data.train.take(fel.server_rows))
    clients = _row_keys(fel.data.train.take(np.concatenate(fel.data.partitions)))
    assert not over_rows & clients and not over_rows & _row_keys(fel.data.test) and not over_rows & _row_keys(fel.data.validation)
    assert set(result.submodel_auc) == {"low", "mid", "high"} and "over_arch_auc" in result.baseline
    assert result.final_auc == result.ensemble_auc and result.validation_auc == result.history[-1]["validation_auc"]


def test_submodel_must_fit_its_tier_memory():
    cfg = _fel_cfg()
    subs = [m.model_dump() for m in cfg.ensemble.submodels[:2]] + [{"embedding_dim": 4096}]
    tiers = [{**t.model_dump(), "memory_mb": 0.01 if t.name == "high" else t.memory_mb} for t in cfg.tiers.tiers]
    cfg = cfg.with_(tiers=tiers, **{"ensemble.submodels": subs})
    with pytest.raises(ConfigError, match=r"ensemble.submodels\[2\]"):
        _fel(cfg)


def test_over_arch_starts_as_the_logit_average_and_reads_top_layers():
    data = _fed()
    model = build_model(data.train.spec, ModelConfig(embedding_dim=4, dense_arch=(4,), over_arch=(3,)), seed=0)
    batch = data.test.batch()
    feats = top_features(model, batch)
    assert feats.shape == (len(data.test), 4)
    assert torch.allclose(feats[:, -1], forward_logits(model, batch), atol=1e-6)
    x = torch.randn(50, 7)
    over = OverArch(x, [2, 6], (8,))
    assert torch.allclose(over(x), x[:, [2, 6]].mean(1), atol=1e-6)


def test_divergence_names_the_learning_rate():
    run = FederatedRun(config_from_dict({"data": {"features": ["item"]}}), _fed(), NullPool())
    table = next(iter(run.layout.tables))
    dense = {n: torch.zeros_like(t) for n, t in run.state.items() if n not in run.layout.tables}
    ok = ClientUpdate(0, 1.0, dense, {table: (torch.tensor([1]), torch.ones(1, run.state[table].shape[1]))})
    run.apply(1, AggregatedUpdate.from_clients([ok]))
    bad = ClientUpdate(0, 1.0, dense, {table: (torch.tensor([2]), torch.full((1, run.state[table].shape[1]), float("nan")))})
    with pytest.raises(ConfigError, match="'client.lr'.*round 3"):
        run.apply(3, AggregatedUpdate.from_clients([bad]))


# --- RF^2 ---
def test_mdac():
    base = {"low": 0.6, "mid": 0.5, "high": 0.8}
    opt = {"low": 0.66, "mid": 0.5, "high": 0.76}
    assert relative_change(base, opt) == pytest.approx({"low": 0.1, "mid": 0.0, "high": -0.05})
    assert mdac(base, opt) == pytest.approx(0.15) and mdac(base, base) == 0.0


# --- config ---
@pytest.mark.parametrize(
    "doc, field",
    [
        ({"mode": "asynchronous"}, "mode"),
        ({"mode": "fel", "ensemble": {"clustering": "kmeans"}}, "ensemble.clustering"),
        ({"mode": "fel", "ensemble": {"submodels": [{"embedding_dim": 8}]}}, "ensemble.submodels"),
        ({"mode": "fel", "ensemble": {"submodels": [{"dim": 8}, {}, {}]}}, "ensemble.submodels[0].dim"),
        ({"mode": "fel", "ensemble": {"server_fraction": 1.5}}, "ensemble.server_fraction"),
        ({"mode": "fedbuff", "async": {"buffer_size": 0}}, "async.buffer_size"),
        ({"mode": "fedbuff", "async": {"staleness": "hinge"}}, "async.staleness"),
        ({"mode": "fairness", "fairness": {"optimizations": ["deadline", "magic"]}}, "fairness.optimizations[1]"),
        ({"target_auc": 2}, "target_auc"),
    ],
)
def test_bad_new_config_fields_are_named(doc, field):
    with pytest.raises(ConfigError) as err:
        config_from_dict(doc)
    assert f"'{field}'" in str(err.value)


def test_new_sections_parse():
    cfg = config_from_dict({"mode": "fedbuff", "async": {"buffer_size": 4, "concurrency": 8, "staleness": "constant"}})
    assert cfg.async_ == AsyncConfig(buffer_size=4, concurrency=8, staleness="constant")
    fel = config_from_dict({"mode": "fel", "ensemble": {"clustering": "random", "submodels": [{"embedding_dim": 8}] * 2}})
    assert isinstance(fel.ensemble, EnsembleConfig) and fel.ensemble.submodels[1] == ModelConfig(embedding_dim=8)


def test_control_over_arch_scores_the_trained_baseline(monkeypatch):
    # The control (the server's over-arch on the baseline alone) must read the baseline's trained
    # state, not the initial weights its driver-side module was built with: it once did, and the
    # control's AUC sat at chance while the baseline's was 0.66.
    import fedrec.algorithms.fel as fel_module

    fel = _fel()
    b = fel.baseline
    models = []
    real = fel_module.ensemble_inputs
    monkeypatch.setattr(fel_module, "ensemble_inputs", lambda ms, ex, *a: models.append(ms) or real(ms, ex, *a))
    for run in fel.runs:
        run.round = 1
        run.history = [{"round": 1, "sim_round_seconds": 1.0, "sim_seconds": 1.0, "wall_seconds": 0.1, "client_updates": 0,
                        "failed_updates": 0, "bytes_up": 0, "bytes_down": 0, **run.evaluate()}]
    # Trained since (moved off the weights the module holds), and scored by the actors as on a pool,
    # where the driver's module is never loaded for evaluation.
    b.state = {k: v + 0.5 if v.is_floating_point() else v for k, v in b.state.items()}
    monkeypatch.setattr(b, "final_metrics", lambda: dict(b._last_eval))
    fel.result(wall=1.0)
    control = [ms[0] for ms in models if len(ms) == 1 and ms[0] is b.model]
    assert control, "the control's inputs were not built from the baseline's module"
    for name, value in control[0].state_dict().items():
        assert torch.equal(value, b.state[name]), name
