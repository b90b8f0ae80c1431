"""Asynchronous buffered aggregation: FedBuff (Nguyen et al. 2022), as deployed in PAPAYA (Huba et
al. 2022).

Up to ``async_.concurrency`` clients train at once; a client starts as soon as a slot is free,
trains from the model version it pulled and reports when its device finishes (simulated clock:
``fedrec.client.clock.client_seconds`` with its tier's speed and bandwidth, so stragglers matter).
The server buffers reports and, after every ``buffer_size`` of them, takes a server-optimizer step
on their average, each weighted by its staleness s = (versions published since it pulled): 1/sqrt(1+s)
by default (``polynomial``), 1 (``constant``), or 1 up to ``max_staleness`` and discarded beyond
(``threshold``). The discount is absolute, as in FedBuff: the buffer's delta is
sum(w_i n_i delta_i) / sum(n_i), so a buffer of equally stale updates moves the model less.

Which client reports into which step depends only on the clock and the arrival count, never on
model values, so the run is simulated in two passes: ``simulate`` orders every start and arrival
on the simulated clock first; training then replays it version by version, and all clients that
pulled version v (whatever step they land in) train at once on the actor pool.
"""

from __future__ import annotations

import dataclasses
import heapq
import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import ray
from tqdm import tqdm

from fedrec.config import AsyncConfig, FederatedConfig, config_to_dict
from fedrec.ensemble import check_finite
from fedrec.server import FederatedData, FederatedResult, FederatedServer, plot_history
from fedrec.updates import AggregatedUpdate, SparseRows, UpdateAccumulator


@dataclass
class FedBuffResult(FederatedResult):
    sim_seconds_to_target: float | None = None
    bytes_to_target: int | None = None
    target_auc: float | None = None
    mean_staleness: float = 0.0
    max_staleness: int = 0
    max_in_flight: int = 0
    discarded_updates: int = 0
    dropped_clients: int = 0

    def summary(self) -> str:
        target = (f"target_auc={self.target_auc} reached at sim={self.sim_seconds_to_target:,.1f}s "
                  f"bytes={self.bytes_to_target:,}" if self.sim_seconds_to_target is not None
                  else f"target_auc={self.target_auc} not reached")
        return (f"fedbuff: steps={self.rounds} mean_staleness={self.mean_staleness:.2f} max_staleness={self.max_staleness} "
                f"max_in_flight={self.max_in_flight} discarded={self.discarded_updates} {target}")


@dataclass
class Arrival:
    client: int
    start: float
    end: float
    pulled: int  # model version the client trained from
    step: int  # server step (buffer) it lands in; -1: dropped out, or discarded as too stale
    during: int  # server step under way when it reported (its bytes are counted there)
    staleness: int = 0
    weight: float = 0.0
    dropped: bool = False


@dataclass
class Schedule:
    arrivals: list[Arrival]
    step_times: list[float]  # simulated time of each server step (step j publishes version j + 1)
    max_in_flight: int = 0
    in_flight: list[tuple[float, int]] = field(default_factory=list)  # (time, clients training) after each event


def staleness_weight(staleness: int, cfg: AsyncConfig) -> float:
    if cfg.staleness == "constant":
        return 1.0
    if cfg.staleness == "threshold":
        return 1.0 if staleness <= cfg.max_staleness else 0.0
    return float((1.0 + staleness) ** -cfg.staleness_exponent)


def simulate(times: np.ndarray, dropout: np.ndarray, clients: np.ndarray, cfg: AsyncConfig, steps: int, seed: int) -> Schedule:
    """Event-driven run on the simulated clock: ``times[c]`` is client c's round time, ``dropout[c]``
    the chance it never reports (its slot is held until its time is up). Stops at ``steps`` steps."""
    rng = np.random.default_rng([seed, 0xB0F])
    busy = np.zeros(len(times), dtype=bool)
    heap: list[tuple[float, int, int, int, float, bool]] = []
    arrivals: list[Arrival] = []
    step_times: list[float] = []
    in_flight: list[tuple[float, int]] = []
    version = buffered = seq = 0

    def start(now: float) -> None:
        nonlocal seq
        idle = clients[~busy[clients]]
        if len(idle):
            c = int(rng.choice(idle))
            busy[c] = True
            heapq.heappush(heap, (now + float(times[c]), seq, c, version, now, bool(rng.random() < dropout[c])))
            seq += 1

    for _ in range(min(cfg.concurrency, len(clients))):
        start(0.0)
    in_flight.append((0.0, len(heap)))
    while version < steps and heap:
        end, _, c, pulled, began, dropped = heapq.heappop(heap)
        busy[c] = False
        a = Arrival(c, began, end, pulled, -1, version, version - pulled, 0.0, dropped)
        if not dropped:
            a.weight = staleness_weight(a.staleness, cfg)
            if a.weight > 0:
                a.step = version
                buffered += 1
                if buffered == cfg.buffer_size:
                    step_times.append(end)
                    version, buffered = version + 1, 0
        arrivals.append(a)
        start(end)  # the freed slot goes to the next available client, who pulls the current version
        in_flight.append((end, len(heap)))
    return Schedule(arrivals, step_times, max(n for _, n in in_flight), in_flight)


def scale_update(update: AggregatedUpdate, w: float) -> AggregatedUpdate:
    """Deltas times ``w``, weights unchanged: the staleness discount survives the averaging."""
    sparse = {n: SparseRows(r.ids, r.delta_sum * w, r.weight) for n, r in update.sparse.items()}
    return AggregatedUpdate(update.weight, update.clients, {n: d * w for n, d in update.dense.items()}, sparse)


def time_to_target(history: list[dict], target: float | None) -> tuple[float | None, int | None]:
    """Simulated seconds and bytes (up + down) when the evaluated AUC first reaches ``target``."""
    if target is None:
        return None, None
    moved = 0
    for h in history:
        moved += h.get("bytes_up", 0) + h.get("bytes_down", 0)
        if h.get("auc", -1.0) >= target:
            return float(h["sim_seconds"]), int(moved)
    return None, None


class FedBuffServer:
    """FedBuff over the core server's state, strategy (the server optimizer), clock and actors."""

    def __init__(self, cfg: FederatedConfig, data: FederatedData | None = None) -> None:
        self.cfg = cfg
        self.server = FederatedServer(dataclasses.replace(cfg, mode="sync", plot=None), data)

    def schedule(self) -> Schedule:
        srv = self.server
        n = len(srv.data.partitions)
        times = np.array([srv.client_time(c) for c in range(n)])
        dropout = np.array([self.cfg.tiers.tiers[t].dropout for t in srv.tiers])
        return simulate(times, dropout, srv.clients, self.cfg.async_, self.cfg.rounds, self.cfg.seed)

    def run(self, progress: bool = True) -> FedBuffResult:
        cfg, srv = self.cfg, self.server
        wall_start = time.perf_counter()
        sched = self.schedule()
        steps = len(sched.step_times)
        # groups[v][j]: clients that trained from version v and land in step j
        groups: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
        per_step: dict[int, list[Arrival]] = defaultdict(list)  # what reported during step j
        for a in sched.arrivals:
            if a.step >= 0:
                groups[a.pulled][a.step].append(a.client)
            if not a.dropped:
                per_step[a.during].append(a)
        srv.start_actors()
        buffers: dict[int, UpdateAccumulator] = {}
        emb = set(srv.emb)
        history, train_wall, metrics, per_tier = [], 0.0, {}, {}
        try:
            for v in tqdm(range(steps), desc="fedbuff", unit="step", disable=not progress):
                start = time.perf_counter()
                ref = ray.put(srv.state)
                pending = [(j, srv.submit(ref, np.asarray(cl), v)) for j, cl in sorted(groups[v].items())]
                for j, p in pending:
                    update, stats, _ = srv.gather(p, v)
                    buffers.setdefault(j, UpdateAccumulator(srv.state, emb)).add_aggregate(
                        scale_update(update, staleness_weight(j - v, cfg.async_)))
                srv.state = srv.strategy.aggregate_fit(srv.state, buffers.pop(v).result())
                check_finite(srv, v + 1)
                train_wall += time.perf_counter() - start
                row = self._row(v, per_step[v], sched.step_times[v])
                if (v + 1) % cfg.eval_every == 0 or v + 1 == steps:
                    metrics, per_tier = srv.evaluate()
                    row.update({"auc": metrics["auc"], "logloss": metrics["logloss"], "ne": metrics["ne"], "per_tier_auc": per_tier})
                history.append(row)
        finally:
            srv.stop_actors()
        if not metrics:
            metrics, per_tier = srv.evaluate()
        return self._result(sched, history, metrics, per_tier, train_wall, time.perf_counter() - wall_start)

    def _row(self, v: int, reported: list[Arrival], sim: float) -> dict:
        srv = self.server
        used = [a for a in reported if a.step == v]
        return {"round": v + 1, "client_updates": len(used), "sim_seconds": sim,
                "bytes_up": sum(srv.upload_bytes(a.client) for a in reported),
                "bytes_down": sum(srv.download_bytes(a.client) for a in reported),
                "discarded_updates": sum(a.step < 0 for a in reported),
                "mean_staleness": float(np.mean([a.staleness for a in used])) if used else 0.0,
                "max_staleness": max((a.staleness for a in used), default=0)}

    def _result(self, sched: Schedule, history: list[dict], metrics: dict, per_tier: dict, train_wall: float,
                wall: float) -> FedBuffResult:
        cfg = self.cfg
        used = [a for a in sched.arrivals if a.step >= 0]
        updates = sum(h["client_updates"] for h in history)
        sim_target, bytes_target = time_to_target(history, cfg.target_auc)
        result = FedBuffResult(
            final_auc=metrics["auc"], final_logloss=metrics["logloss"], final_ne=metrics["ne"], rounds=len(history),
            client_updates=updates, wall_seconds=wall, train_wall_seconds=train_wall,
            sim_seconds=history[-1]["sim_seconds"] if history else 0.0,
            client_updates_per_second=updates / train_wall if train_wall else 0.0,
            bytes_up=sum(h["bytes_up"] for h in history), bytes_down=sum(h["bytes_down"] for h in history),
            dense_bytes_up=updates * self.server.model_bytes, per_tier_auc=per_tier, history=history,
            config=config_to_dict(cfg), sim_seconds_to_target=sim_target, bytes_to_target=bytes_target,
            target_auc=cfg.target_auc, mean_staleness=float(np.mean([a.staleness for a in used])) if used else 0.0,
            max_staleness=max((a.staleness for a in used), default=0), max_in_flight=sched.max_in_flight,
            discarded_updates=sum(1 for a in sched.arrivals if a.step < 0 and not a.dropped),
            dropped_clients=sum(a.dropped for a in sched.arrivals),
        )
        if cfg.plot:
            plot_history(result, cfg.plot)
        return result


def run_fedbuff(cfg: FederatedConfig, data: FederatedData | None = None, progress: bool = True) -> FedBuffResult:
    return FedBuffServer(cfg, data).run(progress=progress)
