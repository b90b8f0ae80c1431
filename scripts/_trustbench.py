"""Helpers shared by bench_robust.py and bench_privacy.py: train one sync run and keep it (its
final model is needed for the target item's exposure), and mean/spread over seeds."""

from __future__ import annotations

import math

import numpy as np

from fedrec.algorithms.common import drive, make_loop, session
from fedrec.config import config_from_dict, config_to_dict
from fedrec.runtime.result import FederatedResult
from fedrec.runtime.run import FederatedRun


def train(cfg, data, pool):
    """(result, run) of a synchronous run on ``pool``; the run holds the final model."""
    with session(cfg, data, pool) as s:
        run = FederatedRun(cfg, s.data, s.pool)
        drive(make_loop(cfg, s.pool, [run], progress=False, desc=cfg.strategy.name), False)
        return FederatedResult.from_run(run, s.wall()), run


def with_sections(cfg, **sections):
    """``cfg`` with whole sections replaced (``attack={...}``, ``privacy=None``)."""
    doc = config_to_dict(cfg)
    doc.update(sections)
    return config_from_dict(doc)


def mean_spread(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value; NaN-free input expected)."""
    v = np.asarray([x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))], dtype=float)
    if not len(v):
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0
