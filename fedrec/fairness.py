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

All sync runs (baseline, deadline, over-selection, under each tier assignment) train in lockstep on
one actor pool; FEL runs are compared with their own same-budget single-model baseline.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from fedrec.config import FederatedConfig, config_to_dict
from fedrec.ensemble import FELServer, train_together
from fedrec.server import FederatedData, FederatedResult, FederatedServer, load_federated_data


@dataclass
class FairnessResult(FederatedResult):
    """The core's result fields describe the baseline under the configured tier assignment."""

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


def sync_variants(cfg: FederatedConfig, data: FederatedData, assignment: str) -> dict[str, FederatedServer]:
    """The baseline and each configured sync optimization, all under tier ``assignment``."""
    f = cfg.fairness
    base_cfg = dataclasses.replace(cfg, mode="sync", tier_assignment=assignment, deadline=None, over_selection=0.0, plot=None)
    out = {"baseline": FederatedServer(base_cfg, data)}
    if "deadline" in f.optimizations:
        probe = out["baseline"]
        times = np.array([probe.client_time(c) for c in range(len(data.partitions))])
        deadline = float(np.quantile(times, f.deadline_quantile))  # the same share of clients is too slow under either assignment
        out["deadline"] = FederatedServer(dataclasses.replace(base_cfg, deadline=deadline), data)
    if "over_selection" in f.optimizations:
        out["over_selection"] = FederatedServer(dataclasses.replace(base_cfg, over_selection=f.over_selection), data)
    return out


def _summary(server: FederatedServer, metrics: dict, per_tier: dict) -> dict:
    times = np.array([server.client_time(c) for c in range(len(server.tiers))])
    too_slow = {}
    if server.cfg.deadline is not None:  # which tiers a deadline shuts out
        too_slow = {n: float((times[server.tiers == t] > server.cfg.deadline).mean()) for t, n in enumerate(server.cfg.tiers.names)}
    return {"auc": metrics["auc"], "ne": metrics["ne"], "per_tier_auc": per_tier, "client_updates": server.totals["client_updates"],
            "sim_seconds": server.totals["sim_seconds"], "deadline": server.cfg.deadline, "share_too_slow": too_slow,
            "tier_clients": np.bincount(server.tiers, minlength=len(server.cfg.tiers.tiers)).tolist()}


def run_sync(cfg: FederatedConfig, data: FederatedData, assignments: list[str], progress: bool
             ) -> dict[str, dict[str, FederatedServer]]:
    """Baseline and sync optimizations under every assignment, all in lockstep on one actor pool."""
    variants = {a: sync_variants(cfg, data, a) for a in assignments}
    train_together([s for v in variants.values() for s in v.values()], cfg.rounds, cfg.eval_every, progress, "fairness")
    return variants


def summarize(cfg: FederatedConfig, data: FederatedData, variants: dict[str, FederatedServer], assignment: str,
              progress: bool) -> dict[str, dict]:
    """Per-tier AUC of every method under one assignment, with relative change and MDAC against its
    baseline; FEL (run here) against its own same-budget single model."""
    runs = {}
    for name, s in variants.items():
        runs[name] = {**_summary(s, *s.evaluate()), "history": [{k: h[k] for k in ("round", "sim_seconds", "auc") if k in h}
                                                                 for h in s.history if "auc" in h]}
        if name != "baseline":
            runs[name]["relative_change"] = relative_change(runs["baseline"]["per_tier_auc"], runs[name]["per_tier_auc"])
            runs[name]["mdac"] = mdac(runs["baseline"]["per_tier_auc"], runs[name]["per_tier_auc"])
    if "fel" in cfg.fairness.optimizations:
        fel_cfg = dataclasses.replace(cfg, mode="fel", tier_assignment=assignment, plot=None,
                                      ensemble=dataclasses.replace(cfg.ensemble, clustering="tier", baseline=True))
        r = FELServer(fel_cfg, data).run(progress=progress)
        base_tiers = r.baseline["per_tier_auc"]
        runs["fel"] = {"auc": r.ensemble_auc, "ne": r.ensemble_ne, "per_tier_auc": r.per_tier_auc,
                       "client_updates": r.client_updates, "sim_seconds": r.sim_seconds, "baseline_auc": r.baseline["auc"],
                       "baseline_per_tier_auc": base_tiers, "relative_change": relative_change(base_tiers, r.per_tier_auc),
                       "mdac": mdac(base_tiers, r.per_tier_auc)}
    return runs


def run_fairness(cfg: FederatedConfig, data: FederatedData | None = None, progress: bool = True) -> FairnessResult:
    wall_start = time.perf_counter()
    data = data or load_federated_data(cfg)
    assignments = [cfg.tier_assignment]
    if cfg.fairness.compare_random and cfg.tier_assignment != "random":
        assignments.append("random")
    variants = run_sync(cfg, data, assignments, progress)
    runs = {a: summarize(cfg, data, variants[a], a, progress) for a in assignments}
    ours = runs[cfg.tier_assignment]
    opts = [o for o in cfg.fairness.optimizations if o in ours]
    m = {o: ours[o]["mdac"] for o in opts}
    m_rand = {o: runs["random"][o]["mdac"] for o in opts} if len(runs) > 1 else {}
    b = variants[cfg.tier_assignment]["baseline"]
    final = b.history[-1]
    t = b.totals
    return FairnessResult(
        final_auc=final["auc"], final_logloss=final["logloss"], final_ne=final["ne"], rounds=cfg.rounds,
        client_updates=t["client_updates"], wall_seconds=time.perf_counter() - wall_start,
        train_wall_seconds=t["train_wall_seconds"], sim_seconds=t["sim_seconds"],
        client_updates_per_second=t["client_updates"] / t["train_wall_seconds"] if t["train_wall_seconds"] else 0.0,
        bytes_up=t["bytes_up"], bytes_down=t["bytes_down"], dense_bytes_up=t["dense_bytes_up"],
        per_tier_auc=final["per_tier_auc"], history=b.history, config=config_to_dict(cfg), mdac=m, mdac_random=m_rand,
        understatement={o: m[o] / m_rand[o] if m_rand[o] > 0 else float("inf") for o in m_rand}, runs=runs,
    )
