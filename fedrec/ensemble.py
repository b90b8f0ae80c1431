"""Federated ensemble learning (FEL; Hu et al., "Federated Ensemble Learning for Recommendation").

Clients are split into K disjoint clusters (by device tier, by k-means over user statistics, or at
random). Each cluster trains its own DLRM sub-model with the core's federated rounds, sized to what
its weakest device can hold (e.g. embedding dim 8/16/32 for low/mid/high tiers). All clusters train
at the same time on one actor pool: every round each cluster's server submits its clients (actors
host one model per cluster key) before any gathers. The server then freezes the sub-models and
trains an over-arch, an MLP over their top-layer outputs, on a slice of training data it holds; the
ensemble is served from the server, so its size is not bound by any device.

The server slice is carved out of the *training* rows (``ensemble.server_fraction`` of each client's
rows, at least one row left to the client), so it never overlaps the test split. With
``server_rows: exclusive`` (default) those rows are also removed from the clients, so no row is
seen by both the federated and the server stage; ``shared`` models users who also sent the server
a copy. The single-model baseline trains on the same carved clients.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.cluster import KMeans
from tqdm import tqdm

from data_pipeline.batches import Examples
from data_pipeline.errors import ConfigError
from fedrec.config import FederatedConfig, config_to_dict
from fedrec.metrics import binary_metrics
from fedrec.server import FederatedData, FederatedResult, FederatedServer, load_federated_data, plot_history
from fedrec.updates import state_nbytes

log = logging.getLogger(__name__)


@dataclass
class FELResult(FederatedResult):
    """The core's result (final_* and per_tier_auc are the ensemble's) plus FEL's comparison."""

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
    return dataclasses.replace(data, partitions=parts), np.sort(np.concatenate(taken))


def client_statistics(data: FederatedData) -> np.ndarray:
    """Per client: log #rows, positive rate, and mean log-popularity of its first sparse feature's
    ids (taste for popular vs niche items) — what k-means clusters on."""
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
    elif method == "data":
        stats = client_statistics(data)
        stats = (stats - stats.mean(0)) / np.maximum(stats.std(0), 1e-9)
        clusters = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(stats).astype(np.int64)
    else:
        raise ConfigError("ensemble.clustering", f"unknown {method!r}")
    empty = [i for i in range(k) if not (clusters == i).any()]
    if empty:
        raise ConfigError("ensemble.submodels", f"clusters {empty} have no clients; use fewer sub-models or more clients")
    return clusters


def training_bytes(state) -> int:
    """On-device memory to train a model with SGD: its weights plus their gradients."""
    return 2 * state_nbytes(state)


# --- the over-arch ---
@torch.no_grad()
def top_features(model, batch) -> torch.Tensor:
    """A DLRM's top-layer output: the last hidden layer of its over-arch and its logit."""
    dense = model.dense_arch(batch.dense_features)
    sparse = model.sparse_arch(batch.sparse_features)
    hidden = model.over_arch.model[0](model.inter_arch(dense_features=dense, sparse_features=sparse))
    return torch.cat([hidden, model.over_arch.model[1](hidden)], dim=1)


def ensemble_inputs(models: list, examples: Examples, batch_size: int = 4096) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Features of every row (the sub-models' top layers, side by side), labels, and the column of
    each sub-model's logit."""
    for m in models:
        m.eval()
    feats, labels = [], []
    for b in examples.iter_batches(batch_size):
        feats.append(torch.cat([top_features(m, b) for m in models], dim=1))
        labels.append(b.labels)
    widths = [m.over_arch.model[1].in_features + 1 for m in models]
    return torch.cat(feats), torch.cat(labels), list(np.cumsum(widths) - 1)


class OverArch(torch.nn.Module):
    """MLP over standardized sub-model features, plus a linear skip over the sub-models' logits that
    starts as their average, so training begins from the plain ensemble."""

    def __init__(self, x: torch.Tensor, logit_cols: list[int], hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", x.mean(0))
        self.register_buffer("std", x.std(0).clamp_min(1e-6))
        self.logit_cols = logit_cols
        layers, width = [], x.shape[1]
        for h in hidden:
            layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
            width = h
        last = torch.nn.Linear(width, 1)
        torch.nn.init.zeros_(last.weight)
        torch.nn.init.zeros_(last.bias)
        self.mlp = torch.nn.Sequential(*layers, last)
        self.skip = torch.nn.Linear(len(logit_cols), 1)
        torch.nn.init.constant_(self.skip.weight, 1.0 / len(logit_cols))
        torch.nn.init.zeros_(self.skip.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.mlp((x - self.mean) / self.std) + self.skip(x[:, self.logit_cols])).squeeze(-1)


def train_over_arch(x: torch.Tensor, y: torch.Tensor, logit_cols: list[int], cfg, seed: int) -> tuple[OverArch, dict]:
    """Adam on the server's rows; the epoch with the best log loss on a held-out part is kept."""
    torch.manual_seed(seed)
    order = torch.from_numpy(np.random.default_rng([seed, 0x0A]).permutation(len(y)))
    n_val = int(len(y) * cfg.over_validation)
    val, fit = order[:n_val], order[n_val:]
    model = OverArch(x[fit], logit_cols, cfg.over_arch)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.over_lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    best = (float("inf"), 0, {k: v.clone() for k, v in model.state_dict().items()})
    for epoch in range(1, cfg.over_epochs + 1):
        model.train()
        perm = fit[torch.randperm(len(fit))]
        for start in range(0, len(perm), cfg.over_batch_size):
            idx = perm[start : start + cfg.over_batch_size]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if n_val:
            with torch.no_grad():
                v = float(loss_fn(model(x[val]), y[val]))
            if v < best[0]:
                best = (v, epoch, {k: t.clone() for k, t in model.state_dict().items()})
    if n_val:
        model.load_state_dict(best[2])
    model.eval()
    return model, {"rows": len(y), "fit_rows": len(fit), "best_epoch": best[1] if n_val else cfg.over_epochs,
                   "val_logloss": best[0] if n_val else float("nan")}


# --- the run ---
def lockstep(servers: list[FederatedServer], rounds: int, progress: bool = False, desc: str = "rounds"):
    """Rounds of several servers on one actor pool (they must share the clients' data): each round
    every server submits its clients before any gathers, so all of them train at the same time.
    Yields (round, start time, the servers' round rows); the pool stops when the loop ends."""
    owner = servers[0]
    owner.start_actors({s.model_key: s.cfg.model for s in servers})
    for s in servers[1:]:
        s.share_actors(owner)
    try:
        for rnd in tqdm(range(1, rounds + 1), desc=desc, unit="round", disable=not progress):
            start = time.perf_counter()
            picked = [s.select(rnd) for s in servers]
            pending = [s.submit(s.state, clients, rnd) for s, (clients, _) in zip(servers, picked)]
            rows = [s.finish_round(rnd, c, info, p, start) for s, (c, info), p in zip(servers, picked, pending)]
            for s in servers:
                check_finite(s, rnd)
            yield rnd, start, rows
    finally:
        owner.stop_actors()


def check_finite(server: FederatedServer, rnd: int) -> None:
    """Fail with the knob to turn, not a NaN deep inside the metrics, when training diverges."""
    if not all(torch.isfinite(t).all() for t in server.state.values()):
        raise ConfigError("client.lr", f"model {server.model_key!r} diverged (non-finite weights) in round {rnd}; "
                          f"lower client.lr ({server.cfg.client.lr}) or client.local_epochs ({server.cfg.client.local_epochs})")


def train_together(servers: list[FederatedServer], rounds: int, eval_every: int, progress: bool = False,
                   desc: str = "rounds") -> None:
    """Independent runs (each its own config) in lockstep on one pool; each server's ``history``
    gets its round rows, with test metrics every ``eval_every`` rounds and at the end."""
    for rnd, _, rows in lockstep(servers, rounds, progress, desc):
        for s, row in zip(servers, rows):
            if rnd % eval_every == 0 or rnd == rounds:
                metrics, per_tier = s.evaluate()
                row.update({"auc": metrics["auc"], "logloss": metrics["logloss"], "ne": metrics["ne"], "per_tier_auc": per_tier})
            s.history.append(row)


def apportion(total: int, sizes: np.ndarray) -> np.ndarray:
    """Split ``total`` in proportion to ``sizes`` (largest remainders), at least 1 each."""
    exact = total * sizes / sizes.sum()
    out = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - out))[: total - out.sum()]:
        out[i] += 1
    return np.maximum(out, 1)


class FELServer:
    def __init__(self, cfg: FederatedConfig, data: FederatedData | None = None) -> None:
        self.cfg = cfg
        e = cfg.ensemble
        full = data or load_federated_data(cfg)
        self.data, self.server_rows = carve_server_rows(full, e.server_fraction, e.server_rows == "exclusive", cfg.seed)
        smallest = min(range(len(e.submodels)), key=lambda k: e.submodels[k].embedding_dim)
        # The baseline: the smallest sub-model (it fits every device) trained on all clients, with the
        # same clients per round and rounds (so the same client budget), on the same actor pool.
        self.baseline = FederatedServer(dataclasses.replace(cfg, model=e.submodels[smallest], mode="sync", plot=None),
                                        self.data, model_key="fel_baseline")
        self.tiers = self.baseline.tiers
        k = len(e.submodels)
        self.clusters = cluster_clients(e.clustering, k, self.tiers, self.data, cfg.seed)
        quotas = apportion(cfg.clients_per_round, np.bincount(self.clusters, minlength=k))
        self.names = list(cfg.tiers.names) if e.clustering == "tier" else [f"c{i}" for i in range(k)]
        self.subs = [
            FederatedServer(dataclasses.replace(cfg, model=m, clients_per_round=int(q), mode="sync", plot=None), self.data,
                            clients=np.flatnonzero(self.clusters == i), model_key=f"fel{i}")
            for i, (m, q) in enumerate(zip(e.submodels, quotas))
        ]
        self.check_memory()

    def check_memory(self) -> None:
        """A sub-model must fit the memory of the weakest tier in its cluster."""
        for i, sub in enumerate(self.subs):
            tiers = np.unique(self.tiers[sub.clients])
            weakest = min((self.cfg.tiers.tiers[t] for t in tiers), key=lambda t: t.memory_mb)
            need = training_bytes(sub.state)
            if need > weakest.memory_mb * 2**20:
                raise ConfigError(f"ensemble.submodels[{i}]", f"needs {need / 2**20:.2f} MB to train; tier "
                                  f"{weakest.name!r} in its cluster has {weakest.memory_mb} MB")

    def train_submodels(self, progress: bool) -> tuple[list[dict], float]:
        """All clusters' rounds (and the baseline's), their clients on the actors at the same time."""
        cfg, subs = self.cfg, self.subs
        history, sim, wall = [], 0.0, 0.0
        for rnd, start, done in lockstep(self.servers(), cfg.rounds, progress, "fel"):
            rows = done[: len(subs)]
            wall += time.perf_counter() - start
            sim += max(r["sim_round_seconds"] for r in rows)  # clusters train in parallel
            row = {"round": rnd, "sim_seconds": sim, "wall_seconds": time.perf_counter() - start,
                   **{k: sum(r[k] for r in rows) for k in ("client_updates", "failed_updates", "bytes_up", "bytes_down")}}
            if rnd % cfg.eval_every == 0 or rnd == cfg.rounds:
                row["submodel_auc"] = {n: s.evaluate()[0]["auc"] for n, s in zip(self.names, subs)}
                if cfg.ensemble.baseline:
                    row["baseline_auc"] = self.baseline.evaluate()[0]["auc"]
                    row["baseline_sim_seconds"] = self.baseline.totals["sim_seconds"]
            history.append(row)
        return history, wall

    def servers(self) -> list[FederatedServer]:
        """The servers this run trains: one per cluster, and the baseline."""
        return self.subs + ([self.baseline] if self.cfg.ensemble.baseline else [])

    def run(self, progress: bool = True) -> FELResult:
        cfg = self.cfg
        wall_start = time.perf_counter()
        history, train_wall = self.train_submodels(progress)
        models = []
        sub_info = {}
        for name, s in zip(self.names, self.subs):
            s.model.load_state_dict(s.state)
            metrics, per_tier = s.evaluate()
            models.append(s.model)
            sub_info[name] = {**metrics, "per_tier_auc": per_tier, "clients": len(s.clients),
                              "tiers": np.bincount(self.tiers[s.clients], minlength=len(cfg.tiers.tiers)).tolist(),
                              "embedding_dim": s.cfg.model.embedding_dim, "model_bytes": s.model_bytes,
                              "train_bytes": training_bytes(s.state), "client_updates": s.totals["client_updates"]}
        x, y, logit_cols = ensemble_inputs(models, self.data.train.take(self.server_rows))
        over, over_info = train_over_arch(x, y, logit_cols, cfg.ensemble, cfg.seed)
        tx, ty, _ = ensemble_inputs(models, self.data.test)
        with torch.no_grad():
            probs = torch.sigmoid(over(tx)).numpy()
            avg_probs = torch.sigmoid(tx[:, logit_cols].mean(1)).numpy()
        labels = ty.numpy()
        metrics, per_tier = self.baseline.score(labels, probs)
        average = binary_metrics(labels, avg_probs)
        history[-1].update({"auc": metrics["auc"], "logloss": metrics["logloss"], "ne": metrics["ne"], "per_tier_auc": per_tier})
        baseline = {}
        if cfg.ensemble.baseline:
            b = self.baseline
            b_metrics, b_tier = b.evaluate()
            # Control: the same server-side over-arch on the baseline's top layer alone, to separate
            # what the ensemble adds from what the server's own rows add.
            bx, by, bcols = ensemble_inputs([b.model], self.data.train.take(self.server_rows))
            b_over, _ = train_over_arch(bx, by, bcols, cfg.ensemble, cfg.seed)
            btx, _, _ = ensemble_inputs([b.model], self.data.test)
            with torch.no_grad():
                b_over_metrics = binary_metrics(labels, torch.sigmoid(b_over(btx)).numpy())
            baseline = {**b_metrics, "per_tier_auc": b_tier, "client_updates": b.totals["client_updates"],
                        "sim_seconds": b.totals["sim_seconds"], "bytes_up": b.totals["bytes_up"],
                        "embedding_dim": b.cfg.model.embedding_dim, "over_arch_auc": b_over_metrics["auc"],
                        "over_arch_ne": b_over_metrics["ne"]}
        totals = {k: sum(s.totals[k] for s in self.subs) for k in ("client_updates", "bytes_up", "bytes_down", "dense_bytes_up")}
        result = FELResult(
            final_auc=metrics["auc"], final_logloss=metrics["logloss"], final_ne=metrics["ne"], rounds=cfg.rounds,
            client_updates=totals["client_updates"], wall_seconds=time.perf_counter() - wall_start,
            train_wall_seconds=train_wall, sim_seconds=history[-1]["sim_seconds"],
            client_updates_per_second=totals["client_updates"] / train_wall if train_wall else 0.0,
            bytes_up=totals["bytes_up"], bytes_down=totals["bytes_down"], dense_bytes_up=totals["dense_bytes_up"],
            per_tier_auc=per_tier, history=history, config=config_to_dict(cfg),
            ensemble_auc=metrics["auc"], ensemble_logloss=metrics["logloss"], ensemble_ne=metrics["ne"],
            average_auc=average["auc"], submodel_auc={n: v["auc"] for n, v in sub_info.items()}, submodels=sub_info,
            baseline=baseline, server_rows=len(self.server_rows), over_arch=over_info,
            quality_gain_pct=quality_gain(metrics, baseline) if baseline else {},
        )
        if cfg.plot:
            plot_history(result, cfg.plot)
        return result


def quality_gain(ours: dict, base: dict) -> dict[str, float]:
    """Relative gains in percent, positive = better: AUC up, log loss and NE down."""
    return {"auc": 100 * (ours["auc"] - base["auc"]) / base["auc"],
            "logloss": 100 * (base["logloss"] - ours["logloss"]) / base["logloss"],
            "ne": 100 * (base["ne"] - ours["ne"]) / base["ne"]}


def run_fel(cfg: FederatedConfig, data: FederatedData | None = None, progress: bool = True) -> FELResult:
    return FELServer(cfg, data).run(progress=progress)
