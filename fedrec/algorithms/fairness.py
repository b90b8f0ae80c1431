"""Tier fairness of system optimizations, after RF^2 (Maeng et al., "Towards Fair Federated
Recommendation Learning", RecSys 2022).

An optimization (a round deadline that drops stragglers, over-selection that keeps the first
finishers, tier-aware FEL) changes each tier's accuracy differently. MDAC, the maximum difference
of relative accuracy change between tiers, measures that spread:
``MDAC = max_t r_t - min_t r_t`` with ``r_t = (AUC_t(opt) - AUC_t(base)) / AUC_t(base)``.
RF^2's point is that devices and data are not independent (heavy users own different phones), and
a simulator that assigns tiers at random understates MDAC. ``run_fairness`` measures every
optimization under the configured tier assignment (``correlated``: Dirichlet over each client's
amount of data) and, with ``fairness.compare_random``, under random tiers; the ratio of the two
MDACs is the understatement.

All sync arms (baseline, deadline, over-selection, under each tier assignment) are runs in one round
loop on one pool; FEL arms are compared with their own same-budget single-model baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fedrec.algorithms.common import drive, make_loop, session
from fedrec.algorithms.fel import run_fel
from fedrec.config import config_to_dict
from fedrec.runtime.data import FederatedData
from fedrec.runtime.pool import ClientPool
from fedrec.runtime.result import FederatedResult
from fedrec.runtime.run import FederatedRun


@dataclass
class FairnessResult(FederatedResult):
    """The core result fields describe the baseline under the configured tier assignment."""

    mdac: dict[str, float] = field(default_factory=dict)  # per optimization, configured assignment
    mdac_random: dict[str, float] = field(default_factory=dict)  # the same under random tiers
    understatement: dict[str, float] = field(default_factory=dict)  # mdac / mdac_random
    runs: dict[str, dict[str, dict]] = field(default_factory=dict)  # assignment -> method -> summary

    def summary(self) -> str:
        parts = [f"{o}: mdac={v:.4f}" + (f" random={self.mdac_random[o]:.4f} x{self.understatement[o]:.1f}"
                                          if o in self.mdac_random else "") for o, v in self.mdac.items()]
        return "fairness: " + "; ".join(parts)


def relative_change(base: dict[str, float], opt: dict[str, float]) -> dict[str, float]:
    return {t: (opt[t] - base[t]) / base[t] for t in base if t in opt}


def mdac(base: dict[str, float], opt: dict[str, float]) -> float:
    """Maximum difference of relative accuracy change between tiers (0: every tier moved alike)."""
    r = list(relative_change(base, opt).values())
    return float(max(r) - min(r)) if r else float("nan")


def sync_arms(cfg, data: FederatedData, pool: ClientPool, assignment: str) -> dict[str, FederatedRun]:
    """The baseline and each configured sync optimization, all under tier ``assignment``."""
    f = cfg.fairness
    base_cfg = cfg.model_copy(update={"mode": "sync", "tier_assignment": assignment, "deadline": None,
                                      "over_selection": 0.0, "plot": None})
    arms = {"baseline": FederatedRun(base_cfg, data, pool, key=f"{assignment}/baseline")}
    if "deadline" in f.optimizations:
        # the same share of clients is too slow under either assignment
        deadline = float(np.quantile(arms["baseline"].facts.seconds, f.deadline_quantile))
        arms["deadline"] = FederatedRun(base_cfg.model_copy(update={"deadline": deadline}), data, pool, key=f"{assignment}/deadline")
    if "over_selection" in f.optimizations:
        arms["over_selection"] = FederatedRun(base_cfg.model_copy(update={"over_selection": f.over_selection}), data, pool,
                                              key=f"{assignment}/over_selection")
    return arms


def _summary(run: FederatedRun) -> dict:
    m = run.final_metrics()
    too_slow = {}
    if run.cfg.deadline is not None:  # which tiers a deadline shuts out
        too_slow = {n: float((run.facts.seconds[run.tiers == t] > run.cfg.deadline).mean())
                    for t, n in enumerate(run.cfg.tiers.names)}
    return {"auc": m["auc"], "ne": m["ne"], "validation_auc": m.get("validation_auc"), "per_tier_auc": m["per_tier_auc"],
            "client_updates": run.totals["client_updates"], "sim_seconds": run.totals["sim_seconds"],
            "deadline": run.cfg.deadline, "share_too_slow": too_slow,
            "tier_clients": np.bincount(run.tiers, minlength=len(run.cfg.tiers.tiers)).tolist(),
            "history": [{k: h[k] for k in ("round", "sim_seconds", "auc") if k in h} for h in run.history if "auc" in h]}


def summarize(cfg, data: FederatedData, pool: ClientPool, arms: dict[str, FederatedRun], assignment: str,
              progress: bool) -> dict[str, dict]:
    """Per-tier AUC of every arm under one assignment, with relative change and MDAC against its
    baseline; FEL (run here) against its own same-budget single model."""
    runs = {}
    for name, run in arms.items():
        runs[name] = _summary(run)
        if name != "baseline":
            runs[name]["relative_change"] = relative_change(runs["baseline"]["per_tier_auc"], runs[name]["per_tier_auc"])
            runs[name]["mdac"] = mdac(runs["baseline"]["per_tier_auc"], runs[name]["per_tier_auc"])
    if "fel" in cfg.fairness.optimizations:
        fel_cfg = cfg.model_copy(update={"mode": "fel", "tier_assignment": assignment, "plot": None, "checkpoint_dir": None,
                                         "ensemble": cfg.ensemble.model_copy(update={"clustering": "tier", "baseline": True})})
        r = run_fel(fel_cfg, data, pool, progress=progress)
        base_tiers = r.baseline["per_tier_auc"]
        runs["fel"] = {"auc": r.ensemble_auc, "ne": r.ensemble_ne, "per_tier_auc": r.per_tier_auc,
                       "client_updates": r.client_updates, "sim_seconds": r.sim_seconds, "baseline_auc": r.baseline["auc"],
                       "baseline_per_tier_auc": base_tiers, "relative_change": relative_change(base_tiers, r.per_tier_auc),
                       "mdac": mdac(base_tiers, r.per_tier_auc)}
    return runs


def run_fairness(cfg, data: FederatedData | None = None, pool: ClientPool | None = None, *, progress: bool = False,
                 resume: bool = False, after_submit=None, trackers=None) -> FairnessResult:
    assignments = [cfg.tier_assignment]
    if cfg.fairness.compare_random and cfg.tier_assignment != "random":
        assignments.append("random")
    with session(cfg, data, pool) as s:
        arms = {a: sync_arms(cfg, s.data, s.pool, a) for a in assignments}
        all_runs = [r for by_name in arms.values() for r in by_name.values()]
        drive(make_loop(cfg, s.pool, all_runs, progress=progress, desc="fairness", after_submit=after_submit, trackers=trackers), resume)
        runs = {a: summarize(cfg, s.data, s.pool, arms[a], a, progress) for a in assignments}
        ours = runs[cfg.tier_assignment]
        opts = [o for o in cfg.fairness.optimizations if o in ours]
        m = {o: ours[o]["mdac"] for o in opts}
        m_rand = {o: runs["random"][o]["mdac"] for o in opts} if len(runs) > 1 else {}
        return FairnessResult.from_run(
            arms[cfg.tier_assignment]["baseline"], s.wall(), config=config_to_dict(cfg), mdac=m, mdac_random=m_rand,
            runs=runs, understatement={o: m[o] / m_rand[o] if m_rand[o] > 0 else float("inf") for o in m_rand})
