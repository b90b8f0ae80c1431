"""The evaluation harness: does a sample rank the models the way the full data does?

The full data is split once (per user, the latest ``test_fraction`` of interactions are held out).
Only the *training* interactions are sampled; every model is trained on the sample and scored on the
full data's held-out interactions, for the users the sample still has (a user a sample drops has no
history for any model to rank from). For each sampler, rate, seed and metric, Kendall's tau compares
the models' metric values on the sample with their values on the full training data (averaged over
seeds). The noise ceiling is tau between two full-data runs with different seeds.

Every trained model's metrics go to an append-only JSON-lines cache keyed by the data, the split,
the sampler, rate, seed, model and hyper-parameters, so a sweep never retrains full-data models and
an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np

from data_pipeline.schema import InteractionData
from data_pipeline.splits import temporal_user_split
from sampling._validate import check_choices, check_interactions, check_rates, check_seeds
from sampling.metrics import METRICS, kendall_tau, mean_metrics, user_metrics
from sampling.models import MODEL_NAMES, interaction_matrix, make_model
from sampling.results import EvaluationResult
from sampling.samplers import SAMPLER_NAMES, make_sampler
from sampling.samplers.svp import inverse_propensity

DEFAULT_MODELS = ("popularity", "item-knn", "ease", "mf", "neumf", "infinity-ae")
DEFAULT_RATES = (0.1, 0.2, 0.4, 0.6, 0.8)
CACHE_VERSION = 3  # bump when a model, metric or split changes meaning


class ResultCache:
    """Metrics of finished runs, one JSON object a line; ``path=None`` keeps them in memory only."""

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = Path(path) if path else None
        self.entries: dict[str, dict] = {}
        if self.path and self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                    self.entries[row["key"]] = row["value"]
                except (ValueError, KeyError):
                    continue  # a line cut short by an interrupted run: recompute it

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def put(self, key: str, value: dict) -> None:
        self.entries[key] = value
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as fh:
                fh.write(json.dumps({"key": key, "value": value}) + "\n")


class Harness:
    """Trains and scores models on the full training data or on samples of it (see module doc)."""

    def __init__(
        self,
        data: InteractionData,
        *,
        models=DEFAULT_MODELS,
        test_fraction: float = 0.2,
        cache_dir: str | os.PathLike | None = None,
        max_eval_users: int = 5000,
    ) -> None:
        self.data = check_interactions(data)
        self.models = check_choices(models, MODEL_NAMES, "models")
        split = temporal_user_split(data, test_fraction)
        self.train = data.take(split.train)
        self.test = self._matrix(data.take(split.test))
        # Candidates are the same for every sample: all items but the user's *full* training history
        # (an item a sample dropped is still one the user has consumed, not a negative).
        self.full_train = self._matrix(self.train)
        self.item_weight = inverse_propensity(
            np.bincount(self.full_train.indices, minlength=data.num_items), self.full_train.nnz
        )
        users = np.flatnonzero(np.diff(self.test.indptr))
        if users.size > max_eval_users:  # bound scoring cost on large data; the subset is fixed
            users = np.sort(np.random.default_rng(0).choice(users, max_eval_users, replace=False))
        self.eval_users = users
        digest = hashlib.sha1(f"v{CACHE_VERSION} {test_fraction} {max_eval_users}".encode())
        for col in ("user", "item", "timestamp"):
            digest.update(np.ascontiguousarray(data.column(col)).tobytes())
        self.fingerprint = digest.hexdigest()[:16]
        self.cache = ResultCache(Path(cache_dir) / f"{data.name}-{self.fingerprint}.jsonl" if cache_dir else None)
        self.trained = 0

    def _matrix(self, part: InteractionData):
        return interaction_matrix(
            part.column("user") - 1, part.column("item") - 1, part.column("rating"), self.data.num_users, self.data.num_items
        )

    def run(self, train: InteractionData, model: str, seed: int, key: tuple) -> dict:
        """Metrics of ``model`` trained on ``train`` (cached under ``key``)."""
        recommender = make_model(model, seed=seed)
        cache_key = json.dumps([*key, model, seed, repr(recommender)])
        hit = self.cache.get(cache_key)
        if hit is not None:
            return hit
        start = time.perf_counter()
        ratings = self._matrix(train)
        recommender.fit(ratings)
        seen = np.diff(ratings.indptr)[self.eval_users] > 0
        users = self.eval_users[seen]
        blocks = [
            user_metrics(recommender.score(u), self.full_train[u], self.test[u], self.item_weight)
            for u in np.array_split(users, max(1, users.size // 512))
        ] if users.size else []
        value = mean_metrics(blocks) if blocks else dict.fromkeys(METRICS, float("nan"))
        value["seconds"] = time.perf_counter() - start
        value["users"] = int(users.size)
        value["rows"] = int(train.num_rows)
        self.cache.put(cache_key, value)
        self.trained += 1
        return value

    def cached(self, key: tuple, seed: int) -> bool:
        return all(
            self.cache.get(json.dumps([*key, m, seed, repr(make_model(m, seed=seed))])) is not None for m in self.models
        )


def evaluate(
    data: InteractionData,
    *,
    methods=SAMPLER_NAMES,
    rates=DEFAULT_RATES,
    models=DEFAULT_MODELS,
    seeds=(0, 1, 2),
    test_fraction: float = 0.2,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> EvaluationResult:
    """Kendall's tau between model rankings on samples and on the full data (see module doc)."""
    methods = check_choices(methods, SAMPLER_NAMES, "methods")
    rates = check_rates(rates)
    seeds = check_seeds(seeds)
    start = time.perf_counter()
    harness = Harness(data, models=models, test_fraction=test_fraction, cache_dir=cache_dir)
    models = harness.models

    full = {s: {m: harness.run(harness.train, m, s, ("full",)) for m in models} for s in seeds}
    runs = []
    bar = _progress(len(methods) * len(seeds) * len(rates), data.name, progress)
    for method, seed in itertools.product(methods, seeds):
        sampler = None
        for rate in rates:
            key = ("sample", repr(make_sampler(method)), rate)  # the sampler's hyper-parameters are part of the key
            if sampler is None and not harness.cached(key, seed):
                sampler = make_sampler(method, seed=seed).fit(harness.train)  # fitted once for all rates
            kept = sampler.sample(rate) if sampler is not None else None
            for model in models:
                metrics = harness.run(kept, model, seed, key)
                runs.append({"method": method, "rate": rate, "seed": seed, "model": model, **metrics})
            bar.update(1)
            bar.set_postfix_str(f"{method} {rate:g}")
    bar.close()
    return EvaluationResult.build(
        dataset=data.name, methods=methods, rates=rates, models=models, seeds=seeds, full=full, runs=runs,
        seconds=time.perf_counter() - start, trained_runs=harness.trained,
    )  # fmt: skip


def taus_against(full: dict, runs: list[dict], models: list[str], seeds: list[int]) -> tuple[list[dict], dict]:
    """Tau of every (method, rate, seed, metric) against the seed-averaged full-data values, and the
    noise ceiling per metric (mean tau over pairs of full-data seeds; None with one seed)."""
    reference = {m: np.array([np.mean([full[s][mod][m] for s in seeds]) for mod in models]) for m in METRICS}
    by_run: dict[tuple, dict] = {}
    for r in runs:
        by_run.setdefault((r["method"], r["rate"], r["seed"]), {})[r["model"]] = r
    taus = [
        {"method": method, "rate": rate, "seed": seed, "metric": m,
         "tau": kendall_tau([row[mod][m] for mod in models], reference[m])}
        for (method, rate, seed), row in by_run.items() for m in METRICS
    ]  # fmt: skip
    ceiling = {
        m: float(np.nanmean([
            kendall_tau([full[a][mod][m] for mod in models], [full[b][mod][m] for mod in models])
            for a, b in itertools.combinations(seeds, 2)
        ])) if len(seeds) > 1 else None
        for m in METRICS
    }  # fmt: skip
    return taus, ceiling


def _progress(total: int, name: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"sampling sweep {name}", unit="sample", disable=not enabled, leave=False)
