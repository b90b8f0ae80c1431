"""Asynchronous buffered aggregation: FedBuff (Nguyen et al. 2022), as deployed in PAPAYA (Huba et
al. 2022).

Up to ``async.concurrency`` clients train at once; a client starts as soon as a slot is free,
trains from the model version it pulled and reports when its device finishes (simulated clock:
its tier's speed and bandwidth, so stragglers matter). The server buffers reports and, after every
``buffer_size`` of them, takes a server-optimizer step on their average, each weighted by its
staleness s = (versions published since it pulled): 1/sqrt(1+s) by default (``polynomial``), 1
(``constant``), or 1 up to ``max_staleness`` and discarded beyond (``threshold``). The discount is
absolute, as in FedBuff: the buffer's delta is sum(w_i n_i delta_i) / sum(n_i), so a buffer of
equally stale updates moves the model less.

Which client reports into which step depends only on the clock and the arrival count, never on
model values, so ``simulate`` orders every start and arrival on the simulated clock first; the
round loop then replays it version by version: in "round" v, all clients that pulled version v
(whatever step they land in) train at once, their updates go to the buffers of their steps, and
the buffer of step v is aggregated.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from fedrec.algorithms.common import drive, finish, make_loop, session
from fedrec.pipeline import Arrivals
from fedrec.runtime.data import FederatedData
from fedrec.runtime.pool import ClientPool, Gathered
from fedrec.runtime.result import FederatedResult
from fedrec.runtime.run import FederatedRun, RoundPlan, Submission


@dataclass
class FedBuffResult(FederatedResult):
    mean_staleness: float = 0.0
    max_staleness: int = 0
    max_in_flight: int = 0
    discarded_updates: int = 0
    dropped_clients: int = 0

    def summary(self) -> str:
        target = (f"target_auc={self.target_auc} reached at sim={self.sim_seconds_to_target:,.1f}s "
                  f"bytes={self.bytes_to_target:,}" if self.sim_seconds_to_target is not None
                  else f"target_auc={self.target_auc} not reached")
        return (super().summary() + f"\nfedbuff: steps={self.rounds} mean_staleness={self.mean_staleness:.2f} "
                f"max_staleness={self.max_staleness} max_in_flight={self.max_in_flight} "
                f"discarded={self.discarded_updates} {target}")


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


def staleness_weight(staleness: int, cfg) -> float:
    if cfg.staleness == "constant":
        return 1.0
    if cfg.staleness == "threshold":
        return 1.0 if staleness <= cfg.max_staleness else 0.0
    return float((1.0 + staleness) ** -cfg.staleness_exponent)


def simulate(times: np.ndarray, dropout: np.ndarray, clients: np.ndarray, cfg, steps: int, seed: int) -> Schedule:
    """Event-driven run on the simulated clock: ``times[c]`` is client c's round time, ``dropout[c]``
    the chance it never reports (its slot is held until its time is up). Runs until ``steps`` steps
    are published and every client that pulled one of the first ``steps`` versions has reported:
    the events are a deterministic sequence, so a run of more steps replays the same prefix, and
    the updates a run's last clients send into later steps are known (a resumed run needs them)."""
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
    while heap and (version < steps or any(entry[3] < steps for entry in heap)):
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


class FedBuffRun(FederatedRun):
    """The sync run's state, strategy (the server optimizer), clock and pipeline; FedBuff's own
    part is which clients train in each step and into which buffer their updates go."""

    def __init__(self, cfg, data: FederatedData, pool: ClientPool, **kwargs) -> None:
        super().__init__(cfg, data, pool, **kwargs)
        self.schedule = simulate(self.facts.seconds, self.facts.dropout, self.clients, cfg.async_, cfg.rounds, cfg.seed)
        # trains[v][j]: clients that pulled version v and land in step j
        self.trains: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
        self.reported: dict[int, list[Arrival]] = defaultdict(list)  # what reported during step j
        for a in self.schedule.arrivals:
            if a.step >= 0:
                self.trains[a.pulled][a.step].append(a.client)
            if not a.dropped:
                self.reported[a.during].append(a)
        self.buffers: dict[int, list[Arrivals]] = defaultdict(list)
        self.sent: dict[tuple[int, int], int] = {}  # (client, version it pulled) -> bytes it uploaded

    @property
    def steps(self) -> int:
        return min(len(self.schedule.step_times), self.cfg.rounds)

    def plan(self, rnd: int) -> RoundPlan:
        v = rnd - 1
        config = self.strategy.fit_config()
        return RoundPlan([Submission(np.asarray(cl, dtype=np.int64), config, tag=j) for j, cl in sorted(self.trains[v].items())])

    def finish(self, rnd: int, plan: RoundPlan, gathered: list[Gathered]) -> dict:
        v = rnd - 1
        for sub, g in zip(plan.submissions, gathered):
            w = staleness_weight(sub.tag - v, self.cfg.async_)
            self.buffers[sub.tag].extend(a.scaled(w) for a in g.arrivals)
            for st in g.stats:
                self.sent[(st.client, v)] = st.bytes_up
        self.apply(rnd, self.aggregate(rnd, self.buffers.pop(v, [])))
        reported = self.reported[v]
        used = [a for a in reported if a.step == v]
        # Bytes count when a client reports (during step v): what it sent, measured when it trained;
        # a discarded (too stale) update was never trained in the replay, so it counts its facts' size.
        ups = [self.sent.pop((a.client, a.pulled), self.facts.upload_bytes(a.client)) for a in reported]
        up = sum(ups)
        sim = self.schedule.step_times[v] - self.totals["sim_seconds"]
        info = {"discarded_updates": sum(a.step < 0 for a in reported),
                "mean_staleness": float(np.mean([a.staleness for a in used])) if used else 0.0,
                "max_staleness": max((a.staleness for a in used), default=0)}
        row = self.record(rnd, gathered, np.array([a.client for a in reported], dtype=np.int64), sim, info, bytes_up=up)
        row["client_updates_landed"] = len(used)
        # Energy when a client reports: its training, its bytes; asynchronous clients never wait idle.
        who = np.array([a.client for a in reported], dtype=np.int64)
        timed = self.facts.round_times(rnd, who, nominal=True)
        row.update(self.account_energy(who, timed.compute_joules, np.full(len(who), sim), np.array(ups, dtype=np.float64),
                                       self.facts.down[who], sim))
        return row

    def state_dict(self) -> dict:
        return {**super().state_dict(), "buffers": dict(self.buffers), "sent": self.sent}

    def load_state_dict(self, blob: dict) -> None:
        super().load_state_dict(blob)
        self.buffers = defaultdict(list, blob["buffers"])
        self.sent = dict(blob["sent"])


def run_fedbuff(cfg, data: FederatedData | None = None, pool: ClientPool | None = None, *, progress: bool = False,
                resume: bool = False, after_submit=None, trackers=None, model_fn=None) -> FedBuffResult:
    with session(cfg, data, pool) as s:
        run = FedBuffRun(cfg, s.data, s.pool, model_fn=model_fn)
        loop = make_loop(cfg.model_copy(update={"rounds": run.steps}), s.pool, [run], progress=progress, desc="fedbuff",
                         after_submit=after_submit, trackers=trackers)
        drive(loop, resume)
        sched, steps = run.schedule, run.steps
        within = [a for a in sched.arrivals if a.during < steps]  # what happened in the steps that ran
        used = [a for a in within if 0 <= a.step < steps]
        result = FedBuffResult.from_run(
            run, s.wall(), mean_staleness=float(np.mean([a.staleness for a in used])) if used else 0.0,
            max_staleness=max((a.staleness for a in used), default=0), max_in_flight=sched.max_in_flight,
            discarded_updates=sum(1 for a in within if a.step < 0 and not a.dropped),
            dropped_clients=sum(a.dropped for a in within),
        )
    return finish(result, cfg)
