"""The scale model's cost model and its projections: per-round costs fitted (non-negative least
squares) to measured runs, predicted wall seconds on this machine, and the cluster of dedicated
nodes that 10M or 100M clients would need. Nothing here runs anything. It is a module of its own
because ``scale_model.py`` (which measures, checks and reports) imports it, and the tests import it
without Ray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

MB = 2**20


# --- the model ---
@dataclass
class Linear:
    """y = intercept + per_update * U + per_actor * A + per_client * P (U: client updates per round,
    A: actors, P: clients in the population)."""

    intercept: float = 0.0
    per_update: float = 0.0
    per_actor: float = 0.0
    per_client: float = 0.0

    def at(self, updates: float = 0.0, actors: float = 0.0, clients: float = 0.0) -> float:
        return self.intercept + self.per_update * updates + self.per_actor * actors + self.per_client * clients


@dataclass
class ByBytes:
    """The driver's work on pre-aggregated sums: y = intercept + per_arrival_byte * the bytes of the
    sums that arrived (combining them) + per_change_byte * the bytes of the state change (the server
    step writes those rows). Through bytes, the per-sum cost is learnt from the runs' varying sizes
    instead of from the few actor counts measured."""

    intercept: float = 0.0
    per_arrival_byte: float = 0.0
    per_change_byte: float = 0.0

    def at(self, arrival_bytes: float, change_bytes: float) -> float:
        return self.intercept + self.per_arrival_byte * arrival_bytes + self.per_change_byte * change_bytes


def _nnls(y, columns: dict) -> dict[str, float]:
    """Non-negative least squares of ``y`` on an intercept and ``columns``. A column that is the same
    in every run cannot be told apart from the intercept: its coefficient stays 0."""
    y = np.asarray(y, dtype=np.float64)
    names, cols = ["intercept"], [np.ones_like(y)]
    for name, v in columns.items():
        if v is not None and np.ptp(np.asarray(v, dtype=np.float64)) > 0:
            names.append(name)
            cols.append(np.asarray(v, dtype=np.float64))
    scale = np.array([np.abs(c).max() for c in cols])  # columns of similar size: nnls is then well conditioned
    coef, _ = nnls(np.column_stack(cols) / scale, y)
    return {n: float(c) for n, c in zip(names, coef / scale)}


def fit_linear(y, updates=None, actors=None, clients=None) -> Linear:
    return Linear(**_nnls(y, {"per_update": updates, "per_actor": actors, "per_client": clients}))


def fit_by_bytes(y, arrival_bytes, change_bytes) -> ByBytes:
    return ByBytes(**_nnls(y, {"per_arrival_byte": arrival_bytes, "per_change_byte": change_bytes}))


@dataclass
class CostModel:
    """Per-round seconds, bytes and memory, fitted on the one-node runs. ``*_wall``: seconds on this
    machine as if it were free (each run's wall seconds times the CPU share its processes could get,
    ``bench_scale.cpu_share``), for the local check; ``*_cpu``: CPU-seconds, for dedicated nodes."""

    actor_cpu: Linear  # actors' CPU-seconds per round
    train_overhead_s: float  # the wait for the actors = overhead + slowdown * CPU-seconds / parallel actors
    train_slowdown: float
    driver_pre_wall: ByBytes  # aggregation + server step, actors pre-aggregate
    driver_pre_cpu: ByBytes
    driver_pc_wall: Linear  # the same with per-client updates (by U alone)
    driver_pc_cpu: Linear
    other_wall: Linear  # the driver's bookkeeping: selection, submission, the round's record
    other_cpu: Linear
    arrival_bytes: Linear  # what the actors' pre-aggregated sums weigh, per round
    change_bytes: Linear  # the state change broadcast per round (at most the whole model)
    bytes_up_per_update: float
    bytes_down_per_update: float
    model_bytes: float
    actor_boot_mb: float  # a booted actor (torch imported), per actor
    actor_mem: Linear  # the actors' RSS above their booted size after training (MB, all together) by actors, clients
    data_bytes_per_client: float  # the data's arrays: the driver's copy, and the shards in the object stores
    driver_run_bytes_per_client: float  # the run's per-client arrays on the driver (facts, tiers, energy)
    driver_base_mb: float  # the driver process before any data (torch, Ray)
    share_one: float = 1.0  # the mean CPU shares during the fitted runs (a prediction that knows no better)
    share_actors: float = 1.0

    def driver_pre(self, updates: float, senders: int, cpu: bool = True) -> float:
        """The driver's seconds on ``senders`` pre-aggregated sums of ``updates`` clients in all; a
        sum is at most the model, and so is the state change."""
        arrival = min(self.arrival_bytes.at(updates, senders), senders * self.model_bytes)
        change = min(self.change_bytes.at(updates), self.model_bytes)
        return (self.driver_pre_cpu if cpu else self.driver_pre_wall).at(arrival, change)


def _per_round(run: dict, phase: str, *keys: str) -> float:
    ph = run["phases"][phase]
    return sum(ph.get(k, 0.0) for k in keys) / ph["rounds"]


def _share(run: dict, phase: str, who: str) -> float:
    return float(np.mean(run["phases"][phase][f"cpu_share_{who}"]))


def _updates(run: dict) -> float:
    ph = run["phases"]["pre_aggregated"]
    return ph["client_updates"] / ph["rounds"]


def fit(runs: list[dict], cores: int, all_runs: list[dict] | None = None) -> CostModel:
    """The cost model from one-node runs with timed rounds of both kinds (``bench_scale.measure``).
    ``cores``: the CPUs the runs' actors shared (their parallelism is at most that). The data's
    bytes per client come from the fitted runs that counted them, else from any in ``all_runs``."""
    all_runs = all_runs or runs
    U = [_updates(r) for r in runs]
    A = [r["actors"] for r in runs]
    P = [r["clients"] for r in runs]
    one = [_share(r, "pre_aggregated", "one") for r in runs]
    arrived = [_per_round(r, "pre_aggregated", "arrival_bytes") for r in runs]
    changed = [_per_round(r, "pre_aggregated", "change_bytes") for r in runs]
    cpu = [_per_round(r, "pre_aggregated", "actor_cpu_seconds") for r in runs]
    train = [_per_round(r, "pre_aggregated", "train") for r in runs]
    parallel = fit_linear([t * _share(r, "pre_aggregated", "actors") for t, r in zip(train, runs)],
                          updates=[c / min(a, cores) for c, a in zip(cpu, A)])
    pre = ("aggregate", "server_step")
    other_wall = [(r["phases"]["pre_aggregated"]["wall_seconds"] / r["phases"]["pre_aggregated"]["rounds"] - t
                   - _per_round(r, "pre_aggregated", *pre)) * s for r, t, s in zip(runs, train, one)]
    other_cpu = [_per_round(r, "pre_aggregated", "plan_cpu", "submit_cpu", "finish_cpu")
                 - _per_round(r, "pre_aggregated", "aggregate_cpu", "server_step_cpu") for r in runs]
    ups = sum(r["phases"]["pre_aggregated"]["bytes_up"] for r in runs)
    downs = sum(r["phases"]["pre_aggregated"]["bytes_down"] for r in runs)
    n_updates = sum(r["phases"]["pre_aggregated"]["client_updates"] for r in runs)
    mem = [r for r in runs if r["rows_per_client"] == runs[0]["rows_per_client"]]
    counted = [r for r in mem if "data_bytes" in r] or [r for r in all_runs if "data_bytes" in r]
    return CostModel(
        actor_cpu=fit_linear(cpu, U, A),
        train_overhead_s=parallel.intercept, train_slowdown=parallel.per_update,
        driver_pre_wall=fit_by_bytes([_per_round(r, "pre_aggregated", *pre) * s for r, s in zip(runs, one)], arrived, changed),
        driver_pre_cpu=fit_by_bytes([_per_round(r, "pre_aggregated", *(k + "_cpu" for k in pre)) for r in runs],
                                    arrived, changed),
        # Per-client updates: the driver handles each one; how many actors sent them does not enter.
        driver_pc_wall=fit_linear([_per_round(r, "per_client", *pre) * _share(r, "per_client", "one") for r in runs], U),
        driver_pc_cpu=fit_linear([_per_round(r, "per_client", *(k + "_cpu" for k in pre)) for r in runs], U),
        other_wall=fit_linear(other_wall, U, clients=P), other_cpu=fit_linear(other_cpu, U, clients=P),
        arrival_bytes=fit_linear(arrived, U, A), change_bytes=fit_linear(changed, U),
        bytes_up_per_update=ups / n_updates, bytes_down_per_update=downs / n_updates,
        model_bytes=float(np.mean([r["model_mb"] for r in runs])) * MB,
        actor_boot_mb=float(np.mean([np.mean(r["actor_boot_mb"]) for r in runs])),
        actor_mem=fit_linear([sum(r["actor_data_mb"]) + sum(r["actor_model_mb"]) for r in mem],
                             actors=[r["actors"] for r in mem], clients=[r["clients"] for r in mem]),
        data_bytes_per_client=float(np.mean([r["data_bytes"] / r["clients"] for r in counted])) if counted else 0.0,
        driver_run_bytes_per_client=float(np.mean([r["driver_run_bytes"] / r["clients"] for r in counted])) if counted else 0.0,
        driver_base_mb=float(min(r["driver_start_mb"] for r in runs)),
        share_one=float(np.mean(one)), share_actors=float(np.mean([_share(r, "pre_aggregated", "actors") for r in runs])),
    )


def predict_wall(m: CostModel, updates: float, actors: int, clients: int, cores: int,
                 share_one: float | None = None, share_actors: float | None = None) -> dict:
    """Seconds per round on this machine (``cores`` CPUs shared by ``actors``), by phase, when one
    process gets ``share_one`` of a core and each of min(actors, cores) busy ones ``share_actors``
    (default: as during the fitted runs)."""
    one = m.share_one if share_one is None else share_one
    many = m.share_actors if share_actors is None else share_actors
    train = (m.train_overhead_s + m.train_slowdown * m.actor_cpu.at(updates, actors) / min(actors, cores)) / many
    driver = m.driver_pre(updates, actors, cpu=False) / one
    other = m.other_wall.at(updates, clients=clients) / one
    return {"train": train, "driver": driver, "other": other, "wall": train + driver + other}


# --- projection to a cluster of dedicated nodes ---
@dataclass
class NodeSpec:
    """One worker node: an actor per core; ``usable``: the share of its memory actors may fill."""

    cores: int = 32
    memory_gb: float = 128.0
    usable: float = 0.8
    nic_gbps: float = 10.0  # the driver's network link, for the bytes it receives and broadcasts
    target_train_s: float = 30.0  # nodes are added until the actors' phase of a round fits in this


@dataclass
class Projection:
    clients: int
    per_round: int
    nodes: int
    nodes_for_memory: int
    actors: int
    memory_per_node_gb: float
    driver_memory_gb: float
    train_s: float  # the actors' phase of the round
    driver_per_client_s: float  # the driver's aggregation, per-client updates (no pre-aggregation)
    driver_per_actor_s: float  # ... each actor sends one sum (what the pool does)
    driver_per_node_s: float  # ... each node sends one sum (a per-node combiner; modelled, not built)
    other_s: float
    wall_per_client_s: float
    wall_per_actor_s: float
    wall_per_node_s: float


def nodes_needed(m: CostModel, clients: int, per_round: int, node: NodeSpec) -> tuple[int, int]:
    """(nodes, nodes for memory alone): enough memory for every actor and the population's data,
    and enough actors that a round's training fits in ``node.target_train_s``."""
    fixed_mb = node.cores * (m.actor_boot_mb + m.actor_mem.per_actor)
    room_mb = node.usable * node.memory_gb * 1024 - fixed_mb
    if room_mb <= 0:
        raise ValueError(f"a node's {node.cores} actors alone need {fixed_mb / 1024:.1f} GB")
    mem = max(1, math.ceil(_per_client_mb(m) * clients / room_mb))
    # train_s(N) = overhead + per_actor + (intercept + per_update * U) / (cores * N)
    spare = node.target_train_s - m.train_overhead_s - m.actor_cpu.per_actor
    if spare <= 0:
        raise ValueError(f"a round's training cannot fit in {node.target_train_s} s on any number of nodes")
    time_nodes = math.ceil((m.actor_cpu.intercept + m.actor_cpu.per_update * per_round) / (node.cores * spare))
    return max(mem, time_nodes), mem


def _per_client_mb(m: CostModel) -> float:
    """A node's memory per client it hosts: its actors' RSS, and its shard in the node's object store."""
    return m.actor_mem.per_client + m.data_bytes_per_client / MB


def driver_seconds(m: CostModel, per_round: int, senders: int, nodes: int, node: NodeSpec, per_client: bool) -> float:
    """The driver's aggregation and server step (CPU-seconds) plus its network time: what arrives
    (every update, or one sum per sender) and the state change sent to each node."""
    bw = node.nic_gbps * 1e9 / 8
    change = min(m.change_bytes.at(per_round), m.model_bytes) * nodes
    if per_client:
        return m.driver_pc_cpu.at(per_round, senders) + (per_round * m.bytes_up_per_update + change) / bw
    arrival = min(m.arrival_bytes.at(per_round, senders), senders * m.model_bytes)
    return m.driver_pre(per_round, senders) + (arrival + change) / bw


def project(m: CostModel, clients: int, per_round: int, node: NodeSpec) -> Projection:
    nodes, mem_nodes = nodes_needed(m, clients, per_round, node)
    actors = nodes * node.cores
    train = m.train_overhead_s + m.actor_cpu.at(per_round, actors) / actors
    other = m.other_cpu.at(per_round, clients=clients)
    pc = driver_seconds(m, per_round, actors, nodes, node, per_client=True)
    pa = driver_seconds(m, per_round, actors, nodes, node, per_client=False)
    pn = driver_seconds(m, per_round, nodes, nodes, node, per_client=False)
    mem_node = node.cores * (m.actor_boot_mb + m.actor_mem.per_actor) + _per_client_mb(m) * clients / nodes
    # The driver holds the data, puts every shard into its object store, and the run's per-client arrays.
    driver_mem = m.driver_base_mb + clients * (2 * m.data_bytes_per_client + m.driver_run_bytes_per_client) / MB
    return Projection(clients, per_round, nodes, mem_nodes, actors, mem_node / 1024, driver_mem / 1024, train,
                      pc, pa, pn, other, train + pc + other, train + pa + other, train + pn + other)


def driver_bottleneck(m: CostModel, clients: int, node: NodeSpec, mode: str, low: int = 100) -> int | None:
    """Clients per round (``low`` .. the population) from which on the driver's aggregation takes
    longer than the actors' phase of the round, the cluster sized by ``nodes_needed``: the smallest
    U on a log grid with the driver slower at U and at every larger U. None: not even at the largest."""
    found = None
    for u in np.unique(np.geomspace(low, clients, 400).astype(np.int64))[::-1]:
        p = project(m, clients, int(u), node)
        driver = {"per_client": p.driver_per_client_s, "per_actor": p.driver_per_actor_s, "per_node": p.driver_per_node_s}[mode]
        if driver <= p.train_s:
            break
        found = int(u)
    return found
