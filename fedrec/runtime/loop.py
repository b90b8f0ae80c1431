"""The one round loop: plan -> submit -> gather -> aggregate -> evaluate -> record -> checkpoint.

It drives one run (sync, FedBuff) or several in lockstep on one pool (FEL's sub-models and
baseline, the fairness study's arms): every round all runs submit before any gathers, so their
clients train at the same time. Algorithms supply only what differs (``plan`` and ``finish`` on
the run); evaluation cadence, history, progress, tracking and checkpoints live here once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ray.exceptions import RayActorError
from tqdm import tqdm

from data_pipeline.errors import ConfigError
from fedrec.runtime.checkpoint import Checkpointer
from fedrec.runtime.pool import ClientPool

# A test-only hook called after every run has submitted its round (e.g. to kill an actor mid-round).
AfterSubmit = Callable[[int, ClientPool], None]


class RoundLoop:
    def __init__(self, pool: ClientPool, runs: list, *, rounds: int, eval_every: int, progress: bool = False,
                 desc: str = "federated", checkpoint: Checkpointer | None = None, trackers: list | None = None,
                 after_submit: list[AfterSubmit] | None = None, host_meter=None) -> None:
        self.pool, self.runs = pool, runs
        self.rounds, self.eval_every = rounds, eval_every
        self.progress, self.desc = progress, desc
        self.checkpoint = checkpoint
        self.trackers = list(trackers or [])  # objects with log(run_name, round, row) and close()
        self.after_submit = list(after_submit or [])
        self.host_meter = host_meter  # fedrec.energy.host.HostMeter: this machine's joules, read per round

    def resume(self) -> int:
        """Load the checkpoint if there is one; returns the round it was taken after (0: none)."""
        blob = self.checkpoint.load() if self.checkpoint else None
        if blob is None:
            return 0
        if blob["round"] >= self.rounds:
            raise ConfigError("rounds", f"the checkpoint in {self.checkpoint.path} already finished round {blob['round']} "
                              f"of {self.rounds}; pass a larger --rounds to train further")
        for run in self.runs:
            run.load_state_dict(blob["runs"][run.key])
        return int(blob["round"])

    def _restore_replaced(self) -> None:
        replaced = self.pool.take_replaced()
        if replaced:  # the devices those actors simulated get their state back from the last checkpoint
            blob = self.checkpoint.load() if self.checkpoint is not None else None
            for run in self.runs:
                run.restore_devices(replaced, blob)

    def _evaluate(self, run, final: bool, attempts: int = 3) -> dict:
        """Evaluation runs on the clients' actors; one lost meanwhile (its node went down after the
        round's results came back) is replaced, its devices restored, and the evaluation retried."""
        for attempt in range(attempts):
            try:
                return run.evaluate(final=final)
            except RayActorError:
                if attempt == attempts - 1 or not self.pool.replace_dead():
                    raise
                self._restore_replaced()
        raise AssertionError("unreachable")

    def run(self, start: int = 0) -> None:
        bar = tqdm(total=self.rounds, initial=start, desc=self.desc, unit="round", disable=not self.progress)
        for rnd in range(start + 1, self.rounds + 1):
            self.round(rnd)
            bar.update(1)
            last = self.runs[0].history[-1] if self.runs[0].history else {}
            if "auc" in last:
                bar.set_postfix(auc=f"{last['auc']:.4f}")
        bar.close()

    def round(self, rnd: int) -> None:
        started = time.perf_counter()
        joules_before = self.host_meter.joules() if self.host_meter is not None else 0.0
        plans, pending = [], []
        for run in self.runs:
            run.round = rnd
            plan = run.plan(rnd)
            plans.append(plan)
            pending.append([run.submit(self.pool, s, rnd) for s in plan.submissions])
        for hook in self.after_submit:
            hook(rnd, self.pool)
        rows = []
        for run, plan, pend in zip(self.runs, plans, pending):
            rows.append(run.finish(rnd, plan, [self.pool.gather(p) for p in pend]))
        wall = time.perf_counter() - started
        self._restore_replaced()
        evaluate = rnd % self.eval_every == 0 or rnd == self.rounds
        host = self.host_meter.joules() - joules_before if self.host_meter is not None else None
        for run, row in zip(self.runs, rows):
            run.totals["train_wall_seconds"] += wall  # lockstep runs share the round's wall time
            if host is not None:  # ... and the host's energy in it
                run.totals["host_joules"] = run.totals.get("host_joules", 0.0) + host
                run.totals["host_source"] = self.host_meter.source
            row["wall_seconds"] = wall
            if evaluate:
                row.update(self._evaluate(run, final=rnd == self.rounds))
            run.history.append(row)
            for tracker in self.trackers:
                tracker.log(run.name, rnd, row)
        if self.checkpoint is not None and self.checkpoint.due(rnd, self.rounds):
            self.checkpoint.save(rnd, self.runs)
