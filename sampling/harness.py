"""The evaluation harness: does a sample rank the models the way the full data does?

The full data is split once: per user, the latest ``test_fraction`` of interactions are held out
(``split="temporal"``), or a random ``test_fraction`` of them (``"random"``; ``"auto"`` picks random
for logs that carry no times, where "latest" would only mean "last in the file").
Only the *training* interactions are sampled; every model is trained on the sample and scored on the
full data's held-out interactions, for the users the sample still has (a user a sample drops has no
history for any model to rank from). For each sampler, rate, seed and metric, Kendall's tau compares
the models' metric values on the sample with their values on the full training data (averaged over
seeds). The noise ceiling is the tau two equally good experiments reach: the zoo trained on the
full data under two different *random* per-user splits with two different model seeds (the seed
moves the stochastic models, MF-BPR and NeuMF, and the split moves every model), averaged over
pairs of seeds. A sampler whose tau reaches the ceiling is as faithful as rerunning the experiment.

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
import pyarrow as pa

from data_pipeline.schema import InteractionData
from data_pipeline.splits import Split, temporal_user_split
from sampling._validate import check_choice, check_choices, check_interactions, check_rates, check_seeds
from sampling.metrics import METRICS, kendall_tau, mean_metrics, user_metrics
from sampling.models import MODEL_NAMES, log_matrix, make_model
from sampling.names import DEFAULT_MODELS, DEFAULT_RATES, SPLITS
from sampling.results import EvaluationResult
from sampling.samplers import SAMPLER_NAMES, make_sampler
from sampling.samplers.svp import inverse_propensity

CACHE_VERSION = 4  # bump when a model, metric or split changes meaning


def has_times(data: InteractionData) -> bool:
    """Whether the log carried times: readers number the rows of a log without them in file order
    (``build_interactions``), which is exactly 0, 1, 2, ..."""
    ts = data.column("timestamp")
    return not np.array_equal(ts, np.arange(ts.size))


def user_split(data: InteractionData, test_fraction: float, split: str = "auto", seed: int = 0) -> Split:
    """Per user, ``test_fraction`` of their interactions held out: the latest (``temporal``) or
    random ones (``random``, drawn with ``seed``); ``auto`` is temporal when the log has times."""
    split = check_choice(split, SPLITS, "split")
    if split == "auto":
        split = "temporal" if has_times(data) else "random"
    if split == "temporal":
        return temporal_user_split(data, test_fraction)
    # The temporal split's per-user counts, with each user's history put in random order first.
    shuffled = np.random.default_rng(seed).permutation(data.num_rows)
    by_random_time = data.take(shuffled)
    by_random_time.interactions = by_random_time.interactions.set_column(
        3, "timestamp", pa.array(np.arange(data.num_rows, dtype=np.int64))
    )
    inner = temporal_user_split(by_random_time, test_fraction)
    return Split(np.sort(shuffled[inner.train]), np.sort(shuffled[inner.test]))


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
        split: str = "auto",
        split_seed: int = 0,
        model_params: dict[str, dict] | None = None,
    ) -> None:
        self.data = check_interactions(data)
        self.models = check_choices(models, MODEL_NAMES, "models")
        self.model_params = dict(model_params or {})
        parts = user_split(data, test_fraction, split, split_seed)
        self.train = data.take(parts.train)
        self.test = log_matrix(data.take(parts.test))
        # Candidates are the same for every sample: all items but the user's *full* training history
        # (an item a sample dropped is still one the user has consumed, not a negative).
        self.full_train = log_matrix(self.train)
        self.item_weight = inverse_propensity(
            np.bincount(self.full_train.indices, minlength=data.num_items), self.full_train.nnz
        )
        users = np.flatnonzero(np.diff(self.test.indptr))
        if users.size > max_eval_users:  # bound scoring cost on large data; the subset is fixed
            users = np.sort(np.random.default_rng(0).choice(users, max_eval_users, replace=False))
        self.eval_users = users
        digest = hashlib.sha1(f"v{CACHE_VERSION} {test_fraction}".encode())
        digest.update(np.ascontiguousarray(parts.test).tobytes())  # the split itself
        digest.update(np.ascontiguousarray(users).tobytes())  # and who is scored
        for col in ("user", "item", "timestamp"):
            digest.update(np.ascontiguousarray(data.column(col)).tobytes())
        self.fingerprint = digest.hexdigest()[:16]
        self.cache = ResultCache(Path(cache_dir) / f"{data.name}-{self.fingerprint}.jsonl" if cache_dir else None)
        self.trained = 0

    def model(self, name: str, seed: int):
        return make_model(name, seed=seed, **self.model_params.get(name, {}))

    def run(self, train: InteractionData, model: str, seed: int, key: tuple) -> dict:
        """Metrics of ``model`` trained on ``train`` (cached under ``key``)."""
        recommender = self.model(model, seed)
        cache_key = json.dumps([*key, model, seed, repr(recommender)])
        hit = self.cache.get(cache_key)
        if hit is not None:
            return hit
        start = time.perf_counter()
        ratings = log_matrix(train)
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
            self.cache.get(json.dumps([*key, m, seed, repr(self.model(m, seed))])) is not None for m in self.models
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
    split: str = "auto",
    max_eval_users: int = 5000,
    model_params: dict[str, dict] | None = None,
) -> EvaluationResult:
    """Kendall's tau between model rankings on samples and on the full data (see module doc)."""
    methods = check_choices(methods, SAMPLER_NAMES, "methods")
    rates = check_rates(rates)
    seeds = check_seeds(seeds)
    start = time.perf_counter()
    setup = dict(models=models, test_fraction=test_fraction, cache_dir=cache_dir, max_eval_users=max_eval_users,
                 model_params=model_params)  # fmt: skip
    harness = Harness(data, split=split, **setup)
    models = harness.models

    full = {s: {m: harness.run(harness.train, m, s, ("full",)) for m in models} for s in seeds}
    runs = []
    bar = _progress(len(methods) * len(seeds) * len(rates) + (len(seeds) if len(seeds) > 1 else 0), data.name, progress)
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
    ceiling_runs, trained = {}, harness.trained
    if len(seeds) > 1:  # one full-data experiment per seed, each on its own random split
        for seed in seeds:
            other = Harness(data, split="random", split_seed=1000 + seed, **setup)
            ceiling_runs[seed] = {m: other.run(other.train, m, seed, ("full",)) for m in models}
            trained += other.trained
            bar.update(1)
            bar.set_postfix_str(f"noise ceiling, split {seed}")
    bar.close()
    return EvaluationResult.build(
        dataset=data.name, methods=methods, rates=rates, models=models, seeds=seeds, full=full, runs=runs,
        seconds=time.perf_counter() - start, trained_runs=trained, ceiling_runs=ceiling_runs,
        split=split if split != "auto" else ("temporal" if has_times(data) else "random"),
    )  # fmt: skip


def taus_against(full: dict, runs: list[dict], models: list[str], seeds: list[int]) -> list[dict]:
    """Tau of every (method, rate, seed, metric) against the seed-averaged full-data values."""
    reference = {m: np.array([np.mean([full[s][mod][m] for s in seeds]) for mod in models]) for m in METRICS}
    by_run: dict[tuple, dict] = {}
    for r in runs:
        by_run.setdefault((r["method"], r["rate"], r["seed"]), {})[r["model"]] = r
    return [
        {"method": method, "rate": rate, "seed": seed, "metric": m,
         "tau": kendall_tau([row[mod][m] for mod in models], reference[m])}
        for (method, rate, seed), row in by_run.items() for m in METRICS
    ]  # fmt: skip


def noise_ceiling(ceiling_runs: dict, models: list[str]) -> dict:
    """Per metric: mean tau between the zoo's rankings in two independent full-data experiments
    (random split and model seed both changed; see module doc); None with fewer than two."""
    seeds = sorted(ceiling_runs)
    return {
        m: float(np.nanmean([
            kendall_tau([ceiling_runs[a][mod][m] for mod in models], [ceiling_runs[b][mod][m] for mod in models])
            for a, b in itertools.combinations(seeds, 2)
        ])) if len(seeds) > 1 else None
        for m in METRICS
    }  # fmt: skip


def _progress(total: int, name: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"sampling sweep {name}", unit="sample", disable=not enabled, leave=False)
