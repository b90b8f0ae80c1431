"""Data-Genie: predict, from a dataset's meta-features, how well each sampler preserves model
rankings (Kendall's tau) at each rate; pick a sampler, or the smallest rate reaching a target tau.

Inputs are hand-made meta-features (counts, density, degree distributions and their Gini,
popularity skew, temporal dynamics, graph statistics) plus the sampler and the rate. Estimators:

* ``knn``: the tau curves (tau against rate, per sampler) of the ``n_neighbors`` training datasets
  nearest in standardised meta-feature space, averaged with inverse-distance weights; with
  ``prior_weight`` p, that average gets weight 1 - p and the ``mean`` (every training dataset
  equally) weight p, a shrinkage toward the dataset-blind answer: one neighbour's curves are one
  noisy experiment, and the mean is what an unseen dataset resembles on average;
* ``mean``: the same over all training datasets, i.e. the feature-blind baseline;
* ``gbr`` / ``forest``: scikit-learn tree ensembles over (meta-features, one-hot sampler, rate).

``sampling.train_genie`` compares them leave-one-real-dataset-out and ships the best as
``genie_model.json`` when it beats ``mean`` once its own choice is nested (today none does, so the
shipped model is ``mean`` over the real-data sweep): plain JSON (the tau table, and tree arrays for
the tree ensembles), so prediction needs numpy only and never unpickles.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from data_pipeline.errors import ConfigError
from data_pipeline.schema import InteractionData
from data_pipeline.stats import gini
from sampling._validate import check_choice, check_choices, check_interactions, check_rate
from sampling.samplers import SAMPLER_NAMES
from sampling.samplers.base import degrees, zero_based

MODEL_FILE = Path(__file__).with_name("genie_model.json")
ESTIMATORS = ("knn", "mean", "gbr", "forest")
FEATURE_NAMES = (
    "log_rows", "log_users", "log_items", "log_density",
    "user_deg_mean", "user_deg_median", "user_deg_gini", "user_deg_cv",
    "item_deg_mean", "item_deg_median", "item_deg_gini", "item_deg_cv",
    "item_top1_share", "item_top10_share", "zipf_slope", "cold_item_share",
    "pop_drift", "user_span", "recent_new_items", "rating_std",
    "assortativity", "mainstreamness", "giant_component",
)  # fmt: skip


def meta_features(data: InteractionData) -> dict[str, float]:
    """Scale-free summary statistics of an interaction log (see FEATURE_NAMES)."""
    data = check_interactions(data)
    user, item = zero_based(data)
    ts = data.column("timestamp").astype(np.float64)
    udeg_all, ideg_all = degrees(data)
    udeg, ideg = udeg_all[udeg_all > 0], ideg_all[ideg_all > 0]
    n, n_users, n_items = data.num_rows, udeg.size, ideg.size
    ranked = np.sort(ideg)[::-1]
    top = max(1, int(0.1 * ranked.size)), max(1, int(0.01 * ranked.size))
    head = ranked[: max(2, ranked.size // 2)]
    slope = np.polyfit(np.log(np.arange(1, head.size + 1)), np.log(head), 1)[0] if head.size > 1 else 0.0

    order = np.argsort(ts, kind="stable")
    half = order.size // 2
    early = np.bincount(item[order[:half]], minlength=data.num_items).astype(np.float64)
    late = np.bincount(item[order[half:]], minlength=data.num_items).astype(np.float64)
    cos = early @ late / max(np.linalg.norm(early) * np.linalg.norm(late), 1e-12)
    span = max(ts.max() - ts.min(), 1.0)
    first, last = np.full(data.num_users, np.inf), np.full(data.num_users, -np.inf)
    np.minimum.at(first, user, ts)
    np.maximum.at(last, user, ts)
    user_span = (last - first)[udeg_all > 0]  # how long each user stays, as a share of the log's span
    cut = order[int(0.9 * order.size) :]  # the latest 10% of the log
    first_seen = np.full(data.num_items, np.inf)
    np.minimum.at(first_seen, item, ts)
    recent_new = float(np.mean(first_seen[item[cut]] >= ts[order[int(0.9 * order.size)]])) if cut.size else 0.0

    log_u, log_i = np.log1p(udeg_all[user]), np.log1p(ideg_all[item])
    assort = float(np.corrcoef(log_u, log_i)[0, 1]) if log_u.std() > 0 and log_i.std() > 0 else 0.0
    mainstream = float(np.mean(np.bincount(user, weights=ideg_all[item], minlength=data.num_users)[udeg_all > 0] / udeg) / ideg.mean())
    graph = sp.coo_matrix((np.ones(n), (user, data.num_users + item)), shape=(data.num_users + data.num_items,) * 2)
    _, labels = connected_components(graph, directed=False)
    live = np.r_[udeg_all > 0, ideg_all > 0]
    giant = np.bincount(labels[live]).max() / live.sum()

    values = {
        "log_rows": np.log10(n), "log_users": np.log10(n_users), "log_items": np.log10(n_items),
        "log_density": np.log10(n / (n_users * n_items)),
        "user_deg_mean": np.log10(udeg.mean()), "user_deg_median": np.log10(np.median(udeg)),
        "user_deg_gini": gini(udeg), "user_deg_cv": udeg.std() / udeg.mean(),
        "item_deg_mean": np.log10(ideg.mean()), "item_deg_median": np.log10(np.median(ideg)),
        "item_deg_gini": gini(ideg), "item_deg_cv": ideg.std() / ideg.mean(),
        "item_top1_share": ranked[: top[1]].sum() / n, "item_top10_share": ranked[: top[0]].sum() / n,
        "zipf_slope": slope, "cold_item_share": np.mean(ideg < 5),
        "pop_drift": 1.0 - cos, "user_span": float(np.median(user_span) / span), "recent_new_items": recent_new,
        "rating_std": float(np.std(data.column("rating"))),
        "assortativity": assort, "mainstreamness": mainstream, "giant_component": giant,
    }  # fmt: skip
    return {k: float(values[k]) for k in FEATURE_NAMES}


class DataGenie:
    """Predicts tau for (dataset meta-features, sampler, rate); scikit-learn style."""

    def __init__(
        self,
        estimator: str = "knn",
        n_neighbors: int = 3,
        n_estimators: int = 300,
        max_depth: int = 3,
        learning_rate: float = 0.05,
        random_state: int = 0,
        prior_weight: float = 0.0,
    ) -> None:
        self.estimator = estimator
        self.prior_weight = prior_weight
        self.n_neighbors = n_neighbors
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.random_state = random_state

    # ---- learning -------------------------------------------------------------------------
    def fit(self, records: list[dict]) -> DataGenie:
        """``records``: dicts with ``dataset``, ``features`` (meta-features), ``method``, ``rate``, ``tau``."""
        check_choice(self.estimator, ESTIMATORS, "estimator")
        if not 0.0 <= self.prior_weight <= 1.0:
            raise ConfigError("prior_weight", f"must be in [0, 1], got {self.prior_weight}")
        if not records:
            raise ValueError("DataGenie.fit needs at least one record")
        self.methods_ = sorted({r["method"] for r in records}, key=list(SAMPLER_NAMES).index)
        self.table_ = _tau_table(records)
        self.trees_ = []
        if self.estimator in ("gbr", "forest"):
            self._fit_trees(records)
        return self

    def _fit_trees(self, records: list[dict]) -> None:
        from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor

        x = np.array([self._row(r["features"], r["method"], r["rate"]) for r in records])
        y = np.array([r["tau"] for r in records], dtype=np.float64)
        if self.estimator == "gbr":
            model = GradientBoostingRegressor(
                n_estimators=self.n_estimators, max_depth=self.max_depth, learning_rate=self.learning_rate,
                subsample=0.8, random_state=self.random_state,
            ).fit(x, y)  # fmt: skip
            self.base_, self.scale_ = float(y.mean()), self.learning_rate
            trees = [est[0].tree_ for est in model.estimators_]
        else:
            model = RandomForestRegressor(
                n_estimators=self.n_estimators, max_depth=self.max_depth + 3, min_samples_leaf=3,
                random_state=self.random_state,
            ).fit(x, y)  # fmt: skip
            self.base_, self.scale_ = 0.0, 1.0 / len(model.estimators_)
            trees = [est.tree_ for est in model.estimators_]
        self.trees_ = [_export(t) for t in trees]

    # ---- prediction -----------------------------------------------------------------------
    @property
    def uses_features(self) -> bool:
        """False for the dataset-blind ``mean``: its predictions ignore the meta-features, so
        callers need not compute them (pass None)."""
        return self.estimator != "mean"

    def predict(self, features: dict | None, method: str, rate: float) -> float:
        return float(self.predict_many(features, [method], [rate])[0, 0])

    def predict_many(self, features: dict | None, methods=None, rates=None) -> np.ndarray:
        """Predicted tau, methods x rates (defaults: every method known, 5%..100%)."""
        self._check_fitted()
        if features is None and self.uses_features:
            raise ConfigError("features", f"the {self.estimator} estimator needs the dataset's meta-features")
        methods = check_choices(methods or self.methods_, self.methods_, "method")
        rates = [check_rate(r) for r in (rates if rates is not None else np.round(np.arange(0.05, 1.0001, 0.01), 2))]
        if self.trees_:
            x = np.array([self._row(features, m, r) for m in methods for r in rates])
            y = self.base_ + self.scale_ * sum(_tree_predict(t, x) for t in self.trees_)
            return np.clip(y, -1.0, 1.0).reshape(len(methods), len(rates))
        weights = self._dataset_weights(features)
        grid = np.zeros((len(methods), len(rates)))
        for name, w in weights.items():
            curves = self.table_[name]["tau"]
            for i, m in enumerate(methods):
                known = sorted((float(r), t) for r, t in curves.get(m, {}).items())
                grid[i] += w * np.interp(rates, [r for r, _ in known], [t for _, t in known])
        return np.clip(grid, -1.0, 1.0)

    def _dataset_weights(self, features: dict) -> dict[str, float]:
        """Training datasets and their weights: all equal (``mean``) or the nearest ``n_neighbors``
        by inverse distance in meta-feature space, standardised over the training datasets, mixed
        with the equal weights by ``prior_weight``."""
        names = list(self.table_)
        if self.estimator == "mean" or len(names) <= 1:
            return dict.fromkeys(names, 1.0 / len(names))
        f = np.array([[self.table_[n]["features"][k] for k in FEATURE_NAMES] for n in names])
        mu, sd = f.mean(axis=0), f.std(axis=0)
        sd[sd == 0] = 1.0
        q = (np.array([features[k] for k in FEATURE_NAMES]) - mu) / sd
        dist = np.sqrt((((f - mu) / sd - q) ** 2).mean(axis=1))
        near = np.argsort(dist, kind="stable")[: max(1, self.n_neighbors)]
        w = 1.0 / (dist[near] + 1e-3)
        weights = dict.fromkeys(names, self.prior_weight / len(names))
        for i, x in zip(near, w / w.sum()):
            weights[names[i]] += (1.0 - self.prior_weight) * float(x)
        return {name: x for name, x in weights.items() if x > 0}

    def choose(self, features: dict, rate: float, methods=None) -> tuple[str, float]:
        """The sampler with the highest predicted tau at ``rate``, and that tau."""
        methods = list(methods or self.methods_)
        taus = self.predict_many(features, methods, [rate])[:, 0]
        best = int(np.argmax(taus))
        return methods[best], float(taus[best])

    def min_rate(self, features: dict, tau: float, methods=None, rates=None) -> tuple[float, str, float] | None:
        """The smallest rate at which some sampler's predicted tau reaches ``tau``:
        (rate, sampler, predicted tau), or None when no rate reaches it."""
        methods = list(methods or self.methods_)
        rates = list(rates if rates is not None else np.round(np.arange(0.05, 1.0001, 0.01), 2))
        grid = self.predict_many(features, methods, rates)
        reach = np.flatnonzero((grid >= tau).any(axis=0))
        if not reach.size:
            return None
        j = int(reach[0])
        i = int(np.argmax(grid[:, j]))
        return float(rates[j]), methods[i], float(grid[i, j])

    # ---- persistence ----------------------------------------------------------------------
    def to_dict(self) -> dict:
        self._check_fitted()
        return {
            "format": "fedrec-data-genie/1",
            "params": {k: v for k, v in vars(self).items() if not k.endswith("_")},
            "features": list(FEATURE_NAMES),
            "methods": self.methods_,
            "table": self.table_,
            **({"base": self.base_, "scale": self.scale_, "trees": self.trees_} if self.trees_ else {}),
        }

    def save(self, path: str | os.PathLike = MODEL_FILE, **extra) -> None:
        Path(path).write_text(json.dumps({**self.to_dict(), **extra}, separators=(",", ":")))

    @classmethod
    def load(cls, path: str | os.PathLike = MODEL_FILE) -> DataGenie:
        blob = json.loads(Path(path).read_text())
        if blob.get("features") != list(FEATURE_NAMES):
            raise ValueError(f"{path}: trained on other meta-features; retrain with python -m sampling.train_genie")
        genie = cls(**blob["params"])
        genie.methods_, genie.table_ = blob["methods"], blob["table"]
        genie.base_, genie.scale_, genie.trees_ = blob.get("base", 0.0), blob.get("scale", 1.0), blob.get("trees", [])
        genie.info_ = {k: v for k, v in blob.items() if k not in ("params", "methods", "table", "base", "scale", "trees")}
        return genie

    def records(self) -> list[dict]:
        """The training table as fit() records (for refitting, e.g. leave-one-dataset-out)."""
        self._check_fitted()
        return [
            {"dataset": name, "features": entry["features"], "method": m, "rate": float(r), "tau": t}
            for name, entry in self.table_.items() for m, curve in entry["tau"].items() for r, t in curve.items()
        ]  # fmt: skip

    @classmethod
    def load_default(cls) -> DataGenie | None:
        return cls.load(MODEL_FILE) if MODEL_FILE.exists() else None

    def _row(self, features: dict, method: str, rate: float) -> list[float]:
        return [features[k] for k in FEATURE_NAMES] + [float(method == m) for m in SAMPLER_NAMES] + [float(rate)]

    def _check_fitted(self) -> None:
        from sampling._validate import check_fitted

        check_fitted(self, "table_")


def _tau_table(records: list[dict]) -> dict:
    """{dataset: {"features": {...}, "tau": {method: {rate: tau}}}} (a dataset's rows averaged)."""
    sums: dict = {}
    for r in records:
        name = r.get("dataset") or json.dumps(r["features"], sort_keys=True)
        entry = sums.setdefault(name, {"features": r["features"], "tau": {}})
        entry["tau"].setdefault(r["method"], {}).setdefault(f"{float(r['rate']):g}", []).append(float(r["tau"]))
    for entry in sums.values():
        entry["tau"] = {m: {r: float(np.mean(v)) for r, v in c.items()} for m, c in entry["tau"].items()}
    return sums


def _export(tree) -> dict:
    """A fitted sklearn tree as plain lists (leaf value in ``value``)."""
    return {
        "left": tree.children_left.tolist(),
        "right": tree.children_right.tolist(),
        "feature": tree.feature.tolist(),
        "threshold": np.round(tree.threshold, 6).tolist(),
        "value": np.round(tree.value.reshape(-1), 6).tolist(),
    }


def _tree_predict(tree: dict, x: np.ndarray) -> np.ndarray:
    left, right = np.asarray(tree["left"]), np.asarray(tree["right"])
    feature, threshold = np.asarray(tree["feature"]), np.asarray(tree["threshold"])
    node = np.zeros(len(x), dtype=np.int64)
    while True:
        inner = left[node] >= 0
        if not inner.any():
            return np.asarray(tree["value"])[node]
        rows = np.flatnonzero(inner)
        at = node[rows]
        go_left = x[rows, feature[at]] <= threshold[at]
        node[rows] = np.where(go_left, left[at], right[at])
