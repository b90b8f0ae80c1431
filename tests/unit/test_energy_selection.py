"""Energy accounting and client selection without Ray: the energy model's sums and by-hand values,
execution targets on the simulated clock, each selection policy's invariants, Oort's utility and
AutoFL's update rule by hand, and the agent's state surviving a checkpoint."""

import math

import numpy as np
import pytest

from data_pipeline.errors import ConfigError
from fedrec.config import config_from_dict
from fedrec.energy import EnergyConfig, EnergyModel, energy_report
from fedrec.runtime.actor import ClientStat
from fedrec.runtime.pool import Gathered
from fedrec.runtime.run import FederatedRun
from fedrec.selection import AutoFLConfig, AutoFLPolicy, ClientView, Feedback, OortConfig, OortPolicy
from fedrec.synthetic import synthetic_federated_data

TARGETS = [
    {"name": "slow", "share": 0.5, "speed": 0.25, "targets": [{"name": "cpu", "speed": 1.0, "watts": 2.0},
                                                             {"name": "npu", "speed": 3.0, "watts": 1.0}]},
    {"name": "fast", "share": 0.5, "speed": 1.0, "runtime_sigma": 0.2,
     "targets": [{"name": "cpu", "speed": 1.0, "watts": 4.0, "interference": 0.5, "slowdown": 3.0}]},
]


@pytest.fixture(scope="module")
def data():
    return synthetic_federated_data(60, rows_per_client=8, max_cardinality=300, seed=1)


def _run(data, **doc):
    cfg = config_from_dict({"model": {"embedding_dim": 4}, "clients_per_round": 6, **doc})
    return FederatedRun(cfg, data, None)


def _play(run, rounds, loss=0.5):
    """Rounds on the server side alone: every kept client reports ``loss`` and 100 bytes."""
    for rnd in range(1, rounds + 1):
        clients, _, _, sel = run.select_round(rnd)
        run.account_selected(rnd, sel, [Gathered([], [ClientStat(int(c), 8, 1, loss, 100) for c in clients], 0)])
        yield rnd, clients


def test_energy_of_a_round_by_hand():
    from fedrec.client.tiers import TierSpec

    spec = TierSpec.from_list([{"name": "a", "share": 0.5, "idle_watts": 0.5, "up_joules_per_byte": 1e-3,
                                "down_joules_per_byte": 1e-4, "embodied_gco2e_per_hour": 36.0},
                               {"name": "b", "share": 0.5, "idle_watts": 1.0, "up_joules_per_byte": 0.0,
                                "down_joules_per_byte": 0.0, "embodied_gco2e_per_hour": 0.0}])
    cfg = EnergyConfig(server_watts=100.0, network_joules_per_byte=0.01, server_embodied_gco2e_per_hour=3.6)
    model = EnergyModel(cfg, spec, np.array([0, 1, 0]))
    e = model.round(np.array([0, 1]), np.array([5.0, 7.0]), np.array([4.0, 10.0]), np.array([1000, 0]),
                    np.array([2000, 0]), round_seconds=10.0)
    # client 0: 5 J compute + 1 J up + 0.2 J down + 6 s idle x 0.5 W; client 1: 7 J, busy all round
    assert e.client_joules == pytest.approx(5 + 1 + 0.2 + 3 + 7)
    assert e.server_joules == pytest.approx(1000.0) and e.network_joules == pytest.approx(30.0)
    assert e.embodied_gco2e == pytest.approx(36.0 * 10 / 3600 + 3.6 * 10 / 3600)


def test_run_energy_adds_up_grows_with_rounds_and_with_tier_power(data):
    run = _run(data)
    totals = []
    for _ in _play(run, 4):
        rep = energy_report(run.totals, run.cfg.energy, None)
        e = rep["energy"]
        assert e["client_joules"] + e["server_joules"] + e["network_joules"] == e["total_joules"]
        assert rep["co2e_grams"] == rep["co2e"]["operational_grams"] + rep["co2e"]["embodied_grams"] > 0
        assert rep["energy_source"] == "estimated"
        totals.append(e["total_joules"])
    assert all(b > a for a, b in zip(totals, totals[1:]))
    # Double one tier's training power: the same rounds (same seeds) cost more, only on the clients.
    tiers = run.cfg.tiers.to_list()
    hungry = _run(data, tiers=[{**t, "compute_watts": 2 * t["compute_watts"]} if t["name"] == "low" else t for t in tiers])
    list(_play(hungry, 4))
    base, more = (energy_report(r.totals, r.cfg.energy, None)["energy"] for r in (run, hungry))
    assert more["client_joules"] > base["client_joules"]
    assert more["server_joules"] == base["server_joules"] and more["network_joules"] == base["network_joules"]


def test_round_times_equal_the_static_clock_when_nothing_varies(data):
    run = _run(data)
    clients = np.arange(data.num_clients)
    assert np.array_equal(run.facts.round_times(3, clients).seconds, run.facts.seconds)


def test_targets_and_interference_move_the_clock(data):
    run = _run(data, tiers=TARGETS)
    f = run.facts
    slow = np.flatnonzero(run.tiers == 0)
    cpu, npu = f.round_times(1, slow, np.zeros(len(slow))), f.round_times(1, slow, np.ones(len(slow)))
    assert np.allclose(npu.compute_seconds * 3, cpu.compute_seconds)  # a 3x faster target
    assert np.allclose(npu.compute_joules * 6, cpu.compute_joules)  # 3x faster at half the watts
    fast = np.flatnonzero(run.tiers == 1)
    draws = np.array([f.round_times(r, fast).seconds for r in range(1, 30)])
    assert draws.std(axis=0).min() > 0  # interference and spread vary a client's time round to round
    assert np.array_equal(f.round_times(5, fast).seconds, f.round_times(5, fast).seconds)  # but reproducibly


@pytest.mark.parametrize("policy", ["random", "oort", "autofl"])
def test_each_policy_picks_k_distinct_available_clients(data, policy):
    tiers = TARGETS if policy == "autofl" else None
    extra = {"tiers": tiers} if tiers else {}
    cfg = config_from_dict({"model": {"embedding_dim": 4}, "clients_per_round": 6, "selection": {"policy": policy}, **extra})
    available = np.arange(0, data.num_clients, 3)  # a subset, as a FEL cluster is
    run = FederatedRun(cfg, data, None, clients=available)
    for rnd in range(1, 8):
        if run.selector is None:
            fit = run.strategy.configure_fit(np.random.default_rng(rnd), run.clients, run.tiers, 6, cfg.sampling)
            chosen, targets = fit.clients, np.zeros(6, dtype=np.int64)
        else:
            chosen, targets = run.selector.select(rnd, np.random.default_rng(rnd), run.clients, 6)
        assert len(chosen) == 6 == len(np.unique(chosen)) and np.isin(chosen, available).all()
        assert (targets < run.facts.targets.count[run.tiers[chosen]]).all()
        sel_clients, _, _, sel = run.select_round(rnd)
        assert np.isin(sel_clients, available).all() and len(sel_clients) <= 6
        run.account_selected(rnd, sel, [Gathered([], [ClientStat(int(c), 8, 1, 0.4, 100) for c in sel_clients], 0)])
    if run.selector is not None:  # fewer available than K: all of them
        few = available[:4]
        assert np.array_equal(np.sort(run.selector.select(9, np.random.default_rng(0), few, 6)[0]), few)


def _view(samples, seconds, joules, tiers=None, counts=None):
    n = len(samples)
    seconds = np.asarray(seconds, dtype=float).reshape(n, -1)
    return ClientView(np.zeros(n, dtype=np.int64) if tiers is None else np.asarray(tiers), np.asarray(samples, dtype=float),
                      seconds, np.asarray(joules, dtype=float).reshape(n, -1),
                      np.array([seconds.shape[1]]) if counts is None else np.asarray(counts))


def test_oort_utility_by_hand():
    view = _view([4, 9, 16], [10.0, 30.0, 5.0], [1.0, 1.0, 1.0])
    oort = OortPolicy(OortConfig(preferred_seconds=10.0, straggler_penalty=2.0, staleness_weight=0.1), view)
    oort.observe(Feedback(1, np.array([0, 1]), np.zeros(2, int), np.array([1.0, 0.5]), np.array([10.0, 30.0]),
                          np.ones(2), 30.0))
    oort.observe(Feedback(2, np.array([2]), np.zeros(1, int), np.array([0.25]), np.array([5.0]), np.ones(1), 5.0))
    bonus = math.sqrt(0.1 * math.log(3))
    # statistical utilities sqrt(n) x loss = 2, 1.5, 1, over the largest (2)
    expected = [(2 * 1.0 / 2 + bonus) * 1.0,  # on time
                (3 * 0.5 / 2 + bonus) * (10 / 30) ** 2,  # a straggler: (T / t)^alpha
                (4 * 0.25 / 2 + math.sqrt(0.1 * math.log(3) / 2)) * 1.0]  # picked in round 2: a smaller bonus
    assert oort.scores(3, np.array([0, 1, 2])) == pytest.approx(expected)
    chosen, _ = oort.select(3, np.random.default_rng(0), np.array([0, 1, 2]), 2)
    assert chosen.tolist() == [0, 2]


def test_autofl_update_rule_by_hand():
    # Two tiers; tier 0 has targets {0, 1}, tier 1 only {0}. References: t_ref 10 s, J_ref 2 J, u_ref sqrt(4) = 2.
    view = _view([4, 4, 4], [[10.0, 5.0], [10.0, 5.0], [10.0, np.inf]], [[2.0, 1.0], [2.0, 1.0], [2.0, np.inf]],
                 tiers=[0, 0, 1], counts=[2, 1])
    agent = AutoFLPolicy(AutoFLConfig(learning_rate=0.5, time_weight=1.0, energy_weight=1.0, utility_weight=0.5), view)
    assert (agent.t_ref, agent.j_ref, agent.u_ref) == (10.0, 2.0, 2.0)
    fb = Feedback(1, np.array([0, 1, 2]), np.array([1, 1, 0]), np.array([1.0, 0.5, 1.0]), np.array([5.0, 5.0, 20.0]),
                  np.array([1.0, 3.0, 4.0]), 20.0)
    # reward = 0.5 * sqrt(4) * loss / 2 - t / 10 - J / 2
    r = [0.5 * 1.0 - 0.5 - 0.5, 0.5 * 0.5 - 0.5 - 1.5, 0.5 * 1.0 - 2.0 - 2.0]
    assert agent.rewards(fb) == pytest.approx(r)
    agent.observe(fb)
    assert agent.q[0, 1] == pytest.approx((r[0] + r[1]) / 2) and agent.q[1, 0] == pytest.approx(r[2])  # first visit: the mean
    assert agent.visits.tolist() == [[0, 1], [1, 0]]
    fb2 = Feedback(2, np.array([0]), np.array([1]), np.array([2.0]), np.array([5.0]), np.array([1.0]), 5.0)
    r2 = 0.5 * 2.0 - 0.5 - 0.5
    agent.observe(fb2)
    assert agent.q[0, 1] == pytest.approx((r[0] + r[1]) / 2 + 0.5 * (r2 - (r[0] + r[1]) / 2))
    values = agent.values()
    assert values[0, 0] == 1e6 and values[1, 1] == -np.inf  # untried first; a target tier 1 lacks never


def test_autofl_learns_the_efficient_target_and_its_state_resumes(data):
    doc = {"tiers": TARGETS, "selection": {"policy": "autofl", "autofl": {"epsilon": 0.0}}}
    run = _run(data, **doc)
    list(_play(run, 6))
    assert run.selector.q[0, 1] > run.selector.q[0, 0]  # the slow tier's NPU: faster and cheaper than its CPU
    blob = run.state_dict()
    again = _run(data, **doc)
    again.load_state_dict(blob)
    assert np.array_equal(again.selector.q, run.selector.q) and np.array_equal(again.selector.visits, run.selector.visits)
    a, b = run.select_round(7), again.select_round(7)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[3].kept.targets, b[3].kept.targets)
    assert again.totals["client_joules"] == run.totals["client_joules"]


def test_selection_section_is_for_sync_only():
    with pytest.raises(ConfigError, match="'selection'.*only for mode sync"):
        config_from_dict({"mode": "fedbuff", "selection": {"policy": "oort"}})
    with pytest.raises(ConfigError, match="selection.policy"):
        config_from_dict({"selection": {"policy": "greedy"}})
