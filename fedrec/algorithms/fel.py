"""Federated ensemble learning (FEL; Hu et al., "Federated Ensemble Learning for Recommendation").

Clients are split into K disjoint clusters (by device tier, by k-means over user statistics, or at
random). Each cluster trains its own DLRM sub-model with sync rounds, sized to what its weakest
device can hold (e.g. embedding dim 8/16/32 for low/mid/high tiers). All clusters train at the same
time on one pool (one ``FederatedRun`` per cluster, in lockstep in the round loop). The server then
freezes the sub-models and trains an over-arch on their top layers (``over_arch``) on a slice of
training data it holds.

The server slice is carved out of the *training* rows (``ensemble.server_fraction`` of each client's
rows, at least one row left to the client), so it never overlaps the validation or test splits.
With ``server_rows: exclusive`` (default) those rows are also removed from the clients, so no row
is seen by both the federated and the server stage; ``shared`` models users who also sent the
server a copy. The single-model baseline (the smallest sub-model on all clients, same clients per
round) trains on the same carved clients, in the same loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
from sklearn.cluster import KMeans

from data_pipeline.errors import ConfigError
from fedrec.algorithms.common import drive, finish, make_loop, session
from fedrec.algorithms.over_arch import ensemble_inputs, train_over_arch
from fedrec.energy import ENERGY_TOTALS, energy_report
from fedrec.metrics import binary_metrics
from fedrec.runtime.data import FederatedData
from fedrec.runtime.pool import ClientPool
from fedrec.runtime.result import FederatedResult
from fedrec.runtime.run import FederatedRun
from fedrec.updates import state_nbytes


@dataclass
class FELResult(FederatedResult):
    """The core result (final_*, validation_* and per_tier_auc are the ensemble's) plus FEL's comparison."""

    ensemble_auc: float = float("nan")
    ensemble_logloss: float = float("nan")
    ensemble_ne: float = float("nan")
    average_auc: float = float("nan")  # plain mean of the sub-models' logits, no over-arch
    submodel_auc: dict[str, float] = field(default_factory=dict)
    submodels: dict[str, dict] = field(default_factory=dict)
    baseline: dict = field(default_factory=dict)  # smallest sub-model trained on all clients
    quality_gain_pct: dict[str, float] = field(default_factory=dict)  # ensemble vs baseline
    server_rows: int = 0
    over_arch: dict = field(default_factory=dict)

    def summary(self) -> str:
        subs = " ".join(f"{n}={a:.4f}" for n, a in self.submodel_auc.items())
        base = (f" baseline_auc={self.baseline['auc']:.4f} (dim {self.baseline['embedding_dim']}, "
                f"{self.baseline['client_updates']} updates) gain={self.quality_gain_pct['auc']:+.2f}% AUC "
                f"{self.quality_gain_pct['ne']:+.2f}% NE" if self.baseline else "")
        return f"fel: ensemble_auc={self.ensemble_auc:.4f} average_auc={self.average_auc:.4f} submodels: {subs}{base}"


# --- data: the server's slice and the client clusters ---
def carve_server_rows(data: FederatedData, fraction: float, exclusive: bool, seed: int) -> tuple[FederatedData, np.ndarray]:
    """Take ``fraction`` of each client's training rows for the server (each client keeps one at
    least); ``exclusive`` removes them from the clients. Returns the clients' data and the rows."""
    rng = np.random.default_rng([seed, 0xFE1])
    taken, parts = [], []
    for rows in data.partitions:
        k = min(int(round(fraction * len(rows))), len(rows) - 1)
        pick = np.sort(rng.choice(rows, size=k, replace=False)) if k > 0 else rows[:0]
        taken.append(pick)
        parts.append(np.setdiff1d(rows, pick, assume_unique=True) if exclusive else rows)
    return replace(data, partitions=parts), np.sort(np.concatenate(taken))


def client_statistics(data: FederatedData) -> np.ndarray:
    """Per client: log #rows, positive rate, and mean log-popularity of its first sparse feature's
    ids (taste for popular vs niche items): what k-means clusters on."""
    train = data.train
    first = train.spec.sparse_names[0]
    pop = np.log1p(np.bincount(train.values[first], minlength=train.spec.sparse[0].cardinality))
    out = np.zeros((len(data.partitions), 3))
    for c, rows in enumerate(data.partitions):
        ids = train.take(rows).values[first]
        out[c] = (np.log(len(rows)), train.labels[rows].mean(), pop[ids].mean() if ids.size else 0.0)
    return out


def cluster_clients(method: str, k: int, tiers: np.ndarray, data: FederatedData, seed: int) -> np.ndarray:
    """Cluster id per client: its tier, a k-means cluster of its statistics, or a balanced random one."""
    n = len(data.partitions)
    if method == "tier":
        clusters = np.asarray(tiers, dtype=np.int64).copy()
    elif method == "random":
        clusters = np.empty(n, dtype=np.int64)
        clusters[np.random.default_rng([seed, 0xC1]).permutation(n)] = np.arange(n) % k
    else:
        stats = client_statistics(data)
        stats = (stats - stats.mean(0)) / np.maximum(stats.std(0), 1e-9)
        clusters = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(stats).astype(np.int64)
    empty = [i for i in range(k) if not (clusters == i).any()]
    if empty:
        raise ConfigError("ensemble.submodels", f"clusters {empty} have no clients; use fewer sub-models or more clients")
    return clusters


def training_bytes(state) -> int:
    """On-device memory to train a model with SGD: its weights plus their gradients."""
    return 2 * state_nbytes(state)


def apportion(total: int, sizes: np.ndarray) -> np.ndarray:
    """Split ``total`` in proportion to ``sizes`` (largest remainders), at least 1 each."""
    exact = total * sizes / sizes.sum()
    out = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - out))[: total - out.sum()]:
        out[i] += 1
    return np.maximum(out, 1)


def quality_gain(ours: dict, base: dict) -> dict[str, float]:
    """Relative gains in percent, positive = better: AUC up, log loss and NE down."""
    return {"auc": 100 * (ours["auc"] - base["auc"]) / base["auc"],
            "logloss": 100 * (base["logloss"] - ours["logloss"]) / base["logloss"],
            "ne": 100 * (base["ne"] - ours["ne"]) / base["ne"]}


class FEL:
    """The sub-model runs (one per cluster) and the baseline run, on the carved data."""

    def __init__(self, cfg, data: FederatedData, server_rows: np.ndarray, pool: ClientPool) -> None:
        self.cfg, self.data, self.server_rows = cfg, data, server_rows
        e = cfg.ensemble
        smallest = min(range(len(e.submodels)), key=lambda k: e.submodels[k].embedding_dim)
        # The baseline: the smallest sub-model (it fits every device) trained on all clients, with the
        # same clients per round and rounds (the same client budget), in the same loop.
        self.baseline = FederatedRun(cfg.model_copy(update={"model": e.submodels[smallest], "mode": "sync", "plot": None}),
                                     data, pool, key="fel_baseline", name="baseline")
        self.tiers = self.baseline.tiers
        k = len(e.submodels)
        self.clusters = cluster_clients(e.clustering, k, self.tiers, data, cfg.seed)
        quotas = apportion(cfg.clients_per_round, np.bincount(self.clusters, minlength=k))
        self.names = list(cfg.tiers.names) if e.clustering == "tier" else [f"c{i}" for i in range(k)]
        self.subs = [
            FederatedRun(cfg.model_copy(update={"model": m, "clients_per_round": int(q), "mode": "sync", "plot": None}),
                         data, pool, key=f"fel{i}", clients=np.flatnonzero(self.clusters == i), name=self.names[i])
            for i, (m, q) in enumerate(zip(e.submodels, quotas))
        ]
        self.check_memory()

    def check_memory(self) -> None:
        """A sub-model must fit the memory of the weakest tier in its cluster."""
        for i, sub in enumerate(self.subs):
            weakest = min((self.cfg.tiers.tiers[t] for t in np.unique(self.tiers[sub.clients])), key=lambda t: t.memory_mb)
            need = training_bytes(sub.state)
            if need > weakest.memory_mb * 2**20:
                raise ConfigError(f"ensemble.submodels[{i}]", f"needs {need / 2**20:.2f} MB to train; tier "
                                  f"{weakest.name!r} in its cluster has {weakest.memory_mb} MB")

    @property
    def runs(self) -> list[FederatedRun]:
        return self.subs + ([self.baseline] if self.cfg.ensemble.baseline else [])

    def history(self) -> list[dict]:
        """One row per round over the clusters (trained in parallel: a round takes its slowest cluster)."""
        rows, sim = [], 0.0
        for rnd, sub_rows in enumerate(zip(*(s.history for s in self.subs)), start=1):
            sim += max(r["sim_round_seconds"] for r in sub_rows)
            row = {"round": rnd, "sim_seconds": sim, "wall_seconds": sub_rows[0]["wall_seconds"],
                   **{k: sum(r[k] for r in sub_rows) for k in ("client_updates", "failed_updates", "bytes_up", "bytes_down")}}
            if "auc" in sub_rows[0]:
                row["submodel_auc"] = {n: r["auc"] for n, r in zip(self.names, sub_rows)}
                if self.cfg.ensemble.baseline:
                    b = self.baseline.history[rnd - 1]
                    row["baseline_auc"], row["baseline_sim_seconds"] = b["auc"], b["sim_seconds"]
            rows.append(row)
        return rows

    def ensemble(self) -> tuple[dict, dict]:
        """Train the over-arch on the server rows; score the ensemble on validation and test."""
        cfg = self.cfg
        models = []
        for s in self.subs:
            s.model.load_state_dict(s.state)
            models.append(s.model)
        x, y, logit_cols = ensemble_inputs(models, self.data.train.take(self.server_rows))
        over, over_info = train_over_arch(x, y, logit_cols, cfg.ensemble, cfg.seed)
        out = {}
        for split in ("validation", "test"):
            examples, _ = self.data.heldout(split)
            tx, ty, _ = ensemble_inputs(models, examples)
            with torch.no_grad():
                probs, avg = torch.sigmoid(over(tx)).numpy(), torch.sigmoid(tx[:, logit_cols].mean(1)).numpy()
            out[split] = (*self.baseline.score(split, ty.numpy(), probs), binary_metrics(ty.numpy(), avg))
        return out, over_info

    def baseline_summary(self, labels: np.ndarray) -> dict:
        """The baseline's metrics, and the control: the same server over-arch on the baseline alone,
        to separate what the ensemble adds from what the server's own rows add."""
        b = self.baseline
        metrics = b.final_metrics()
        b.model.load_state_dict(b.state)  # the driver's module holds the initial weights; the run trains ``state``
        x, y, cols = ensemble_inputs([b.model], self.data.train.take(self.server_rows))
        b_over, _ = train_over_arch(x, y, cols, self.cfg.ensemble, self.cfg.seed)
        tx, _, _ = ensemble_inputs([b.model], self.data.test)
        with torch.no_grad():
            control = binary_metrics(labels, torch.sigmoid(b_over(tx)).numpy())
        return {"auc": metrics["auc"], "logloss": metrics["logloss"], "ne": metrics["ne"],
                "validation_auc": metrics.get("validation_auc"), "per_tier_auc": metrics["per_tier_auc"],
                "client_updates": b.totals["client_updates"], "sim_seconds": b.totals["sim_seconds"],
                "bytes_up": b.totals["bytes_up"], "embedding_dim": b.cfg.model.embedding_dim,
                "over_arch_auc": control["auc"], "over_arch_ne": control["ne"]}

    def result(self, wall: float) -> FELResult:
        cfg = self.cfg
        history = self.history()
        scores, over_info = self.ensemble()
        (val, _, _), (test, per_tier, average) = scores["validation"], scores["test"]
        history[-1].update({"auc": test["auc"], "logloss": test["logloss"], "ne": test["ne"],
                            "validation_auc": val["auc"], "per_tier_auc": per_tier})
        sub_info = {}
        for name, s in zip(self.names, self.subs):
            m = s.final_metrics()
            sub_info[name] = {"auc": m["auc"], "logloss": m["logloss"], "ne": m["ne"], "per_tier_auc": m["per_tier_auc"],
                              "clients": len(s.clients), "embedding_dim": s.cfg.model.embedding_dim,
                              "tiers": np.bincount(self.tiers[s.clients], minlength=len(cfg.tiers.tiers)).tolist(),
                              "model_bytes": s.facts.model_bytes, "train_bytes": training_bytes(s.state),
                              "client_updates": s.totals["client_updates"]}
        baseline = self.baseline_summary(self.data.test.labels) if cfg.ensemble.baseline else {}
        totals = {k: sum(s.totals[k] for s in self.subs) for k in ("client_updates", "failed_updates", "bytes_up",
                                                                     "bytes_down", "dense_bytes_up")}
        train_wall = self.subs[0].totals["train_wall_seconds"]
        placement = self.subs[0].pool.placement() if self.subs[0].pool is not None else {}
        return FELResult(
            final_auc=test["auc"], final_logloss=test["logloss"], final_ne=test["ne"], validation_auc=val["auc"],
            validation_logloss=val["logloss"], rounds=self.subs[0].round, client_updates=totals["client_updates"],
            wall_seconds=wall, train_wall_seconds=train_wall, sim_seconds=history[-1]["sim_seconds"],
            client_updates_per_second=totals["client_updates"] / train_wall if train_wall else 0.0,
            bytes_up=totals["bytes_up"], bytes_down=totals["bytes_down"], dense_bytes_up=totals["dense_bytes_up"],
            per_tier_auc=per_tier, resumed_from_round=self.subs[0].resumed_from_round, failed_updates=totals["failed_updates"],
            nodes=max(1, len(placement)), actors_per_node=sorted(placement.values(), reverse=True),
            history=history, config=_config_dict(cfg), ensemble_auc=test["auc"], ensemble_logloss=test["logloss"],
            ensemble_ne=test["ne"], average_auc=average["auc"], submodel_auc={n: v["auc"] for n, v in sub_info.items()},
            submodels=sub_info, baseline=baseline, server_rows=len(self.server_rows), over_arch=over_info,
            quality_gain_pct=quality_gain(test, baseline) if baseline else {},
            **self.energy(),
        )

    def energy(self) -> dict:
        """The sub-models' energy together (the same-budget baseline is a comparison, not part of
        FEL); the host's joules are the lockstep rounds', counted once."""
        totals = {k: sum(s.totals.get(k, 0.0) for s in self.subs) for k in ENERGY_TOTALS if k != "host_joules"}
        first = self.subs[0].totals
        totals.update(host_joules=first.get("host_joules", 0.0))
        return energy_report(totals, self.cfg.energy, first.get("host_source"))


def _config_dict(cfg) -> dict:
    from fedrec.config import config_to_dict

    return config_to_dict(cfg)


def run_fel(cfg, data: FederatedData | None = None, pool: ClientPool | None = None, *, progress: bool = False,
            resume: bool = False, after_submit=None, trackers=None) -> FELResult:
    e = cfg.ensemble
    carved: dict = {}

    def carve(full: FederatedData) -> FederatedData:
        clients, carved["rows"] = carve_server_rows(full, e.server_fraction, e.server_rows == "exclusive", cfg.seed)
        return clients

    with session(cfg, data, pool, transform=carve) as s:
        fel = FEL(cfg, s.data, carved["rows"], s.pool)
        drive(make_loop(cfg, s.pool, fel.runs, progress=progress, desc="fel", after_submit=after_submit, trackers=trackers), resume)
        result = fel.result(s.wall())
    return finish(result, cfg)
