"""The sweep Data-Genie learns from: every sampler x rate on each corpus dataset, tau per cell.

One record per dataset x sampler x rate: the dataset's meta-features (of the training split, which
is what a sampler sees), and Kendall's tau of the zoo's ranking on the sample vs the full data
(mean over metrics and seeds). ``group`` marks a dataset ``real`` or ``synthetic``: Data-Genie is
judged leave-one-*real*-dataset-out (``sampling.train_genie``).

What bounds the cost (a whole real-data sweep has to fit in a few hours on 2 cores), the same for
every dataset so that the rankings compare like with like:

* two seeds per dataset (sampler and model seeds; tau averaged over them; the ML-100K benchmark
  runs three): with one seed, which estimator beat the dataset-blind mean did not replicate on a
  second one (README, Data-Genie on real data);
* at most ``max_eval_users`` users scored (a fixed random subset);
* a real log above ``max_rows`` interactions is cut to about that many by keeping random whole
  users (``sampling.synthetic.keep_whole_users``; ML-100K, latest-small, Last.fm and CiteULike);
* the item-item models and infinity-AE keep the ``max_items`` most popular items, infinity-AE a
  kernel support of ``max_users`` users;
* MF-BPR and NeuMF train for at most ``update_budget`` interaction updates on the full training
  data (epochs = budget / training rows, at least 1, at most their defaults); samples of that
  dataset use the same number of epochs, so a model is the same model on a sample and in full.

Each dataset's sweep is cached by the harness (resumable) and its result written next to the
records, so a rerun only trains what is missing.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data_pipeline.atomic import write_json_atomic
from data_pipeline.schema import InteractionData
from sampling.genie import meta_features
from sampling.harness import DEFAULT_MODELS, DEFAULT_RATES, evaluate, user_split
from sampling.models import make_model
from sampling.samplers import SAMPLER_NAMES


@dataclass(frozen=True)
class SweepBounds:
    """Model and evaluation sizes of the sweep (see module doc)."""

    max_eval_users: int = 500
    max_rows: int = 30_000
    max_items: int = 3000
    max_users: int = 2000
    update_budget: int = 1_600_000  # ML-100K (80k training rows) keeps MF-BPR's 20 epochs
    seeds: tuple[int, ...] = (0, 1)

    def model_params(self, train_rows: int) -> dict[str, dict]:
        params: dict[str, dict] = {
            "item-knn": {"max_items": self.max_items},
            "ease": {"max_items": self.max_items},
            "infinity-ae": {"max_users": self.max_users, "max_items": self.max_items},
        }
        for name in ("mf", "neumf", "dlrm"):
            default = make_model(name).epochs
            params[name] = {"epochs": int(np.clip(self.update_budget // max(train_rows, 1), 1, default))}
        return params


@dataclass
class SweepPlan:
    methods: list[str] = field(default_factory=lambda: list(SAMPLER_NAMES))
    rates: list[float] = field(default_factory=lambda: list(DEFAULT_RATES))
    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    bounds: SweepBounds = field(default_factory=SweepBounds)


def training_part(data: InteractionData, test_fraction: float = 0.2) -> InteractionData:
    """Meta-features describe the data a sampler sees: the harness samples the training split."""
    return data.take(user_split(data, test_fraction).train)


def sweep_dataset(
    data: InteractionData, group: str, plan: SweepPlan, cache_dir: str | os.PathLike | None, out_dir: Path | None,
    progress: bool = True,
) -> list[dict]:
    """Records of one dataset (see module doc); its full result goes to ``out_dir/<name>.json``."""
    start = time.perf_counter()
    train = training_part(data)
    result = evaluate(
        data, methods=plan.methods, rates=plan.rates, models=plan.models, seeds=list(plan.bounds.seeds),
        cache_dir=cache_dir, progress=progress, max_eval_users=plan.bounds.max_eval_users,
        model_params=plan.bounds.model_params(train.num_rows),
    )  # fmt: skip
    if out_dir is not None:
        result.write_json(out_dir / f"{data.name}.json")
    features = meta_features(train)
    records = [
        {"dataset": data.name, "group": group, "features": features, "method": method, "rate": rate,
         "tau": result.tau(method, rate)[0]}
        for method in result.methods for rate in result.rates
    ]  # fmt: skip
    print(
        f"{data.name}: {data.num_rows:,} rows, {result.split} split, {result.trained_runs} models trained, "
        f"{time.perf_counter() - start:.0f} s",
        file=sys.stderr,
    )
    return [r for r in records if np.isfinite(r["tau"])]


def sweep(
    datasets: list[tuple[InteractionData, str]], plan: SweepPlan, cache_dir, out: str | os.PathLike, progress: bool = True
) -> list[dict]:
    """Every dataset in turn; all records written to ``out`` (JSON) after each dataset, so an
    interrupted sweep keeps what it finished (and the harness cache the rest)."""
    out = Path(out)
    records: list[dict] = []
    for data, group in datasets:
        records += sweep_dataset(data, group, plan, cache_dir, out.parent / "genie_sweep", progress)
        write_json_atomic(out, {"bounds": plan.bounds.__dict__, "plan": _plan_dict(plan), "records": records},
                          option="--out", indent=None)  # fmt: skip
    return records


def load_records(path: str | os.PathLike) -> list[dict]:
    return json.loads(Path(path).read_text())["records"]


def _plan_dict(plan: SweepPlan) -> dict:
    return {"methods": plan.methods, "rates": plan.rates, "models": plan.models}
