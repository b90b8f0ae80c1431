"""The scale model's arithmetic (scripts/_scale_cost.py) on made-up numbers checked by hand: the
least-squares fit, the node count, the projected round, the driver-bottleneck search, and a
``--refit`` of saved measurements end to end (scripts/scale_model.py; no Ray: the measuring itself
is the benchmark's)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tests.unit.test_bench_scripts import load_script

cost = load_script("_scale_cost")
sm = load_script("scale_model")


def model(**over) -> cost.CostModel:
    zero = cost.Linear()
    base = dict(actor_cpu=zero, train_overhead_s=0.0, train_slowdown=1.0, driver_pre_wall=zero, driver_pre_cpu=zero,
                driver_pc_wall=zero, driver_pc_cpu=zero, other_wall=zero, other_cpu=zero, arrival_bytes=zero,
                change_bytes=zero, bytes_up_per_update=0.0, bytes_down_per_update=0.0, model_bytes=0.0,
                actor_boot_mb=0.0, actor_mem=zero, data_bytes_per_client=0.0, driver_run_bytes_per_client=0.0,
                driver_base_mb=0.0)
    return cost.CostModel(**{**base, **over})


def test_fit_linear_recovers_the_coefficients():
    U, A, P = [100, 200, 400, 100, 800], [1, 2, 2, 4, 3], [1e3, 1e4, 1e5, 1e6, 1e4]
    y = [2 + 0.5 * u + 3 * a + 1e-6 * p for u, a, p in zip(U, A, P)]
    f = cost.fit_linear(y, U, A, P)
    assert (f.intercept, f.per_update, f.per_actor, f.per_client) == pytest.approx((2, 0.5, 3, 1e-6), rel=1e-6)
    assert f.at(1000, 10, 2e6) == pytest.approx(2 + 500 + 30 + 2)


def test_fit_linear_a_constant_variable_goes_into_the_intercept():
    f = cost.fit_linear([5 + 0.1 * u for u in (10, 20, 40)], updates=[10, 20, 40], actors=[2, 2, 2])
    assert f.per_actor == 0 and f.intercept == pytest.approx(5) and f.per_update == pytest.approx(0.1)


def test_fit_linear_never_gives_a_negative_cost():
    # A falling line: the best non-negative slope is 0, and the intercept the mean (3 + 2 + 1) / 3.
    f = cost.fit_linear([3.0, 2.0, 1.0], updates=[0, 1, 2])
    assert f.per_update == 0 and f.intercept == pytest.approx(2.0)


def _cluster_model() -> tuple[cost.CostModel, cost.NodeSpec]:
    m = model(actor_cpu=cost.Linear(1.0, 0.01, 0.5), train_overhead_s=0.5, actor_boot_mb=300,
              actor_mem=cost.Linear(per_actor=100, per_client=0.0005), data_bytes_per_client=0.0005 * 2**20,
              driver_pc_cpu=cost.Linear(0.1, 0.001),
              driver_pre_cpu=cost.ByBytes(0.2, 1e-8, 2e-8), arrival_bytes=cost.Linear(per_actor=1e5),
              change_bytes=cost.Linear(1e6), model_bytes=5e5, bytes_up_per_update=1000,
              driver_base_mb=30, driver_run_bytes_per_client=100)
    return m, cost.NodeSpec(cores=4, memory_gb=10, usable=0.8, nic_gbps=8, target_train_s=10)


def test_nodes_needed_by_hand():
    m, node = _cluster_model()
    # Memory: room per node 0.8 * 10 * 1024 - 4 * (300 + 100) = 6592 MB; 20M clients * (0.0005 MB of actor
    # RSS + 0.0005 MB of object store) = 20000 MB -> 4 nodes.
    # Time: (1 + 0.01 * 100k) CPU-s over 4 cores per node, each with 10 - 0.5 - 0.5 = 9 s: 1001 / 36 = 27.8 -> 28.
    assert cost.nodes_needed(m, 20_000_000, 100_000, node) == (28, 4)
    assert cost.nodes_needed(m, 20_000_000, 1_000, node) == (4, 4)  # 11 / 36: memory decides


def test_project_by_hand():
    m, node = _cluster_model()
    p = cost.project(m, 20_000_000, 100_000, node)
    assert (p.nodes, p.actors) == (28, 112)
    assert p.train_s == pytest.approx(0.5 + (1 + 1000 + 0.5 * 112) / 112)
    # The driver's link moves 1e9 bytes/s; the change (capped at the 5e5-byte model) goes once to each node.
    change_s = 5e5 * 28 / 1e9
    assert p.driver_per_client_s == pytest.approx(0.1 + 0.001 * 1e5 + 1e5 * 1000 / 1e9 + change_s)
    # Pre-aggregated: CPU by the bytes combined (1e5 per sum) and written (the capped change), plus the link.
    assert p.driver_per_actor_s == pytest.approx(0.2 + 1e-8 * 112e5 + 2e-8 * 5e5 + 112e5 / 1e9 + change_s)
    assert p.driver_per_node_s == pytest.approx(0.2 + 1e-8 * 28e5 + 2e-8 * 5e5 + 28e5 / 1e9 + change_s)
    assert p.memory_per_node_gb == pytest.approx((4 * 400 + 0.001 * 20e6 / 28) / 1024)
    # The driver: its base, the data and its shards in the object store (2 x 0.0005 MB), 100 B of facts a client.
    assert p.driver_memory_gb == pytest.approx((30 + 20e6 * (2 * 0.0005 + 100 / 2**20)) / 1024)
    assert p.wall_per_actor_s == pytest.approx(p.train_s + p.driver_per_actor_s + p.other_s)


def test_predict_wall_divides_by_the_cpu_share():
    m = model(actor_cpu=cost.Linear(0.0, 0.004), train_overhead_s=0.1, train_slowdown=1.2,
              driver_pre_wall=cost.ByBytes(0.05, 1e-7, 1e-6), arrival_bytes=cost.Linear(per_update=100, per_actor=1e5),
              change_bytes=cost.Linear(per_update=50), model_bytes=1e9, other_wall=cost.Linear(0.02, per_client=1e-7))
    p = cost.predict_wall(m, 200, 3, 100_000, cores=2, share_one=0.8, share_actors=0.5)
    assert p["train"] == pytest.approx((0.1 + 1.2 * 0.8 / 2) / 0.5)  # 3 actors, 2 cores: 2 at once
    # 3 sums of 3e5 + 2e4 bytes in all, a change of 1e4 bytes
    assert p["driver"] == pytest.approx((0.05 + 1e-7 * 3.2e5 + 1e-6 * 1e4) / 0.8)
    assert p["other"] == pytest.approx((0.02 + 0.01) / 0.8)
    assert p["wall"] == pytest.approx(p["train"] + p["driver"] + p["other"])


def test_driver_bottleneck_is_where_the_driver_stays_slower():
    # One actor per node, unlimited memory; train = 0.001 U / N with N = ceil(0.001 U / 10) nodes.
    # The driver (2 + 0.0005 U) is faster from U = 4000 until one node is not enough (U > 10000);
    # with N >= 2 nodes the training stays <= 10 s while the driver's time only grows.
    m = model(actor_cpu=cost.Linear(per_update=0.001), driver_pc_cpu=cost.Linear(2.0, 0.0005))
    node = cost.NodeSpec(cores=1, memory_gb=1e6, target_train_s=10)
    u = cost.driver_bottleneck(m, 1_000_000, node, "per_client")
    assert 10_000 < u < 10_300  # the first point of the log grid past 10000
    fast = replace(m, driver_pc_cpu=cost.Linear(per_update=1e-6))
    assert cost.driver_bottleneck(fast, 1_000_000, node, "per_client") is None


def _phase(U: int, A: int, P: int, per_client: bool) -> dict:
    """Made-up timings of ``rounds`` rounds from known costs (2 rounds; free machine)."""
    n = 2
    arrival, change = 5000 * A + 100 * U, 300 * U
    drv = (0.05 + 2e-4 * U) if per_client else (0.01 + 4e-7 * arrival + 2e-8 * change)
    cpu = 0.003 * U + 0.02 * A
    train = 0.1 + cpu / min(A, 2)
    other = 0.004 + 1e-5 * U + 1e-8 * P
    return {"rounds": n, "client_updates": U * n, "wall_seconds": n * (train + drv + other), "train": n * train,
            "aggregate": n * drv * 0.25, "server_step": n * drv * 0.75, "aggregate_cpu": n * drv * 0.25,
            "server_step_cpu": n * drv * 0.75, "plan_cpu": n * other, "submit_cpu": 0.0, "finish_cpu": n * drv,
            "actor_cpu_seconds": n * cpu, "arrival_bytes": n * arrival, "change_bytes": n * change,
            "bytes_up": n * U * 9000, "bytes_down": n * U * 13e6, "cpu_share_one": [1.0, 1.0],
            "cpu_share_actors": [1.0, 1.0], "load_avg": [1.0, 1.0, 1.0]}


def _run(label: str, kind: str, U: int, A: int, P: int, nodes: int = 0, rows: int = 2) -> dict:
    data = 0.002 * P * (rows / 2)  # MB the actors' data adds to their RSS, all together
    return {"label": label, "kind": kind, "clients": P, "per_round": U, "actors": A, "rows_per_client": rows,
            "nodes": max(nodes, 1), "actors_per_node": [A] if nodes <= 1 else [1] * nodes, "spec": {"nodes": nodes},
            "model_mb": 12.0,
            "actor_boot_mb": [300.0] * A, "actor_data_mb": [1 + data / A] * A,
            "actor_model_mb": [50.0 + 0.001 * P / A] * A, "actor_data_bytes": [2**20 * data / A] * A,
            "data_bytes": 1000 * P * rows, "driver_run_bytes": 120 * P, "driver_start_mb": 400.0,
            "load_avg_after": [1.0, 1.0, 1.0],
            "phases": {"pre_aggregated": _phase(U, A, P, False), "per_client": _phase(U, A, P, True)}}


def _runs() -> dict:
    runs = [_run(f"sweep-{p}", "sweep", 200, 2, p) for p in (1_000, 10_000, 100_000, 1_000_000)]
    runs += [_run(f"updates-{u}", "updates", u, 2, 10_000) for u in (50, 600, 1500)]
    runs += [_run("actors-A4", "actors", 200, 4, 100_000)]
    runs += [_run(f"cluster-{n}", "cluster", 200, n, 100_000, nodes=n) for n in (1, 2, 3)]
    runs += [_run(f"memory-A{a}", "memory", 200, a, 100_000, rows=10) for a in (2, 4)]
    return {r["label"]: r for r in runs}


def test_fit_recovers_made_up_costs():
    runs = _runs()
    m = cost.fit([r for r in runs.values() if r["kind"] in ("sweep", "updates", "actors")], cores=2)
    assert (m.actor_cpu.per_update, m.actor_cpu.per_actor) == pytest.approx((0.003, 0.02), rel=1e-4)
    assert (m.train_overhead_s, m.train_slowdown) == pytest.approx((0.1, 1.0), rel=1e-4)
    assert (m.driver_pc_cpu.intercept, m.driver_pc_cpu.per_update) == pytest.approx((0.05, 2e-4), rel=1e-4)
    pre = m.driver_pre_wall
    assert (pre.intercept, pre.per_arrival_byte, pre.per_change_byte) == pytest.approx((0.01, 4e-7, 2e-8), rel=1e-3)
    assert (m.other_wall.per_update, m.other_wall.per_client) == pytest.approx((1e-5, 1e-8), rel=1e-3)
    assert m.arrival_bytes.per_actor == pytest.approx(5000, rel=1e-4) and m.change_bytes.per_update == pytest.approx(300)
    assert (m.bytes_up_per_update, m.model_bytes) == pytest.approx((9000, 12 * 2**20))
    # Actors above their booted RSS after training: 1 + 50 per actor, 0.002 + 0.001 MB per client.
    assert (m.actor_mem.per_actor, m.actor_mem.per_client) == pytest.approx((51, 0.003), rel=1e-4)
    assert (m.actor_boot_mb, m.data_bytes_per_client, m.driver_run_bytes_per_client, m.driver_base_mb) == (300, 2000, 120, 400)


def test_refit_end_to_end(tmp_path):
    (tmp_path / "measurements.json").write_text(json.dumps({"machine": {}, "runs": _runs()}))
    sm.main(["--refit", "--out", str(tmp_path), "--docs-img", str(tmp_path / "copy.png")])
    out = json.loads((tmp_path / "scale_model.json").read_text())
    three = next(c for c in out["check"] if c["nodes"] == 3)
    assert three["error"] == pytest.approx(0, abs=1e-3)  # the made-up runs follow the model exactly
    assert out["three_node_target_met"] is True
    assert [(p["clients"], p["per_round"]) for p in out["projections"]] == [
        (10_000_000, 10_000), (10_000_000, 100_000), (100_000_000, 10_000), (100_000_000, 100_000)]
    # 4 actors of 100k clients x 10 rows: 1 + 0.01 * 100k / 4 = 251 MB each, over a third of 535 MB.
    assert out["memory"]["by_actors"]["4"]["mean_mb"] == pytest.approx(251) and out["memory"]["met"] is False
    assert (tmp_path / "scale_model.png").stat().st_size > 0 and (tmp_path / "copy.png").exists()
