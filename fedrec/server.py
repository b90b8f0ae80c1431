"""The synchronous federated server: select -> simulate availability -> train on actors ->
aggregate -> evaluate, round after round, with checkpoints and fault tolerance."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import ray
import torch
from tqdm import tqdm

from data_pipeline.batches import Examples
from data_pipeline.datasets import resolve_data_path
from data_pipeline.features import interaction_examples
from data_pipeline.partition import (
    assign_tiers,
    dirichlet_partition,
    natural_partition,
    quantity_skew_partition,
)
from data_pipeline.readers import load_interactions
from data_pipeline.splits import split as split_rows
from fedrec.client.actor import DEFAULT_MODEL, ClientActor
from fedrec.client.clock import client_seconds
from fedrec.client.local import embedding_param_names
from fedrec.config import FederatedConfig, config_to_dict
from fedrec.metrics import binary_metrics
from fedrec.model import ModelConfig, build_dlrm, predict
from fedrec.ray_runtime import ensure_ray, ray_cpus
from fedrec.strategies import make_strategy
from fedrec.updates import AggregatedUpdate, State, UpdateAccumulator, state_nbytes

log = logging.getLogger(__name__)


@dataclass
class FederatedResult:
    final_auc: float
    final_logloss: float
    final_ne: float
    rounds: int
    client_updates: int
    wall_seconds: float
    train_wall_seconds: float
    sim_seconds: float
    client_updates_per_second: float
    bytes_up: int
    bytes_down: int
    dense_bytes_up: int  # what the same updates would cost uploading whole tables
    per_tier_auc: dict[str, float]
    history: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)

    def to_json(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=2, default=float))


@dataclass
class FederatedData:
    train: Examples
    test: Examples
    partitions: list[np.ndarray]  # train rows per client
    client_users: np.ndarray  # the user behind each client (natural partition), -1 otherwise
    test_client: np.ndarray  # client of each test row (-1: none)


def load_federated_data(cfg: FederatedConfig) -> FederatedData:
    d = cfg.data
    inter = load_interactions(resolve_data_path(d.path), d.format, columns=d.columns)
    parts = split_rows(inter, d.split, d.test_fraction, cfg.seed)
    train = interaction_examples(inter, d.features, d.label_threshold, parts.train)
    test = interaction_examples(inter, d.features, d.label_threshold, parts.test)
    if d.partition == "natural":
        partitions = natural_partition(train.groups)
        users = np.array([train.groups[p[0]] for p in partitions])
        lookup = np.full(int(max(train.groups.max(), test.groups.max())) + 1, -1)
        lookup[users] = np.arange(len(users))
        test_client = lookup[test.groups]
    else:
        n = d.num_clients or 100
        partitions = (
            dirichlet_partition(train.labels.astype(int), n, d.alpha, cfg.seed)
            if d.partition == "dirichlet"
            else quantity_skew_partition(len(train), n, d.alpha, cfg.seed)
        )
        partitions = [p for p in partitions if len(p)]
        users = np.full(len(partitions), -1)
        test_client = np.full(len(test), -1)
    return FederatedData(train, test, partitions, users, test_client)


class FederatedServer:
    """``clients`` restricts selection to a subset (a FEL cluster); ``model_key`` names the model the
    actors train for this server (several servers can share one actor pool, see ``share_actors``)."""

    def __init__(
        self, cfg: FederatedConfig, data: FederatedData | None = None, clients: np.ndarray | None = None,
        model_key: str = DEFAULT_MODEL,
    ) -> None:
        self.cfg = cfg
        self.data = data or load_federated_data(cfg)
        n = len(self.data.partitions)
        self.clients = np.arange(n) if clients is None else np.sort(np.asarray(clients, dtype=np.int64))
        self.model_key = model_key
        self._models: dict[str, ModelConfig] = {}
        sizes = np.array([len(p) for p in self.data.partitions])
        if cfg.tier_assignment == "random":
            self.tiers = assign_tiers(n, cfg.tiers.shares, cfg.seed)
        else:  # RF^2: tiers follow the amount of data a client has (or its inverse)
            stat = sizes if cfg.tier_statistic == "rows" else -sizes
            self.tiers = assign_tiers(n, cfg.tiers.shares, cfg.seed, statistic=stat, alpha=cfg.tier_alpha)
        self.model = build_dlrm(self.data.train.spec, cfg.model, seed=cfg.seed)
        self.state: State = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.emb = embedding_param_names(self.model, self.data.train.spec)
        self.strategy = make_strategy(cfg.strategy, cfg.client)
        self.model_bytes = state_nbytes(self.state)
        self._upload = self._client_upload_bytes()
        self.test_batches = list(self.data.test.iter_batches(4096))
        self.round = 0
        self.history: list[dict] = []
        self.totals = {"client_updates": 0, "bytes_up": 0, "bytes_down": 0, "dense_bytes_up": 0, "sim_seconds": 0.0,
                       "train_wall_seconds": 0.0}
        self.actors: list = []

    # --- per-client facts known before training (they drive the simulated clock) ---
    def _client_upload_bytes(self) -> tuple[np.ndarray, int]:
        """Sparse upload bytes per client (dense deltas + touched rows), vectorised over all clients:
        distinct (client, id) pairs per table, counted per client."""
        dense = sum(t.numel() * t.element_size() for n, t in self.state.items() if n not in self.emb)
        parts = self.data.partitions
        client_of_row = np.full(len(self.data.train), -1, dtype=np.int64)
        for c, rows in enumerate(parts):
            client_of_row[rows] = c
        sparse = np.zeros(len(parts), dtype=np.int64)
        for name, f in self.emb.items():
            lengths = np.diff(self.data.train.offsets[f])
            owner = np.repeat(client_of_row, lengths)
            ids = self.data.train.values[f]
            keep = owner >= 0
            pairs = np.unique(owner[keep] * np.int64(self.state[name].shape[0]) + ids[keep])
            touched = np.bincount(pairs // self.state[name].shape[0], minlength=len(parts))
            sparse += touched * (8 + self.state[name].shape[1] * self.state[name].element_size())
        return dense + sparse, self.model_bytes

    def local_steps(self, client: int) -> int:
        n = len(self.data.partitions[client])
        return self.cfg.client.local_epochs * -(-n // self.cfg.client.batch_size)

    def upload_bytes(self, client: int) -> int:
        return int(self._upload[0][client] if self.cfg.client.sparse_updates else self._upload[1])

    def download_bytes(self, client: int) -> int:
        """The whole model, or with ``client.sparse_downloads`` the same rows a sparse upload holds."""
        return int(self._upload[0][client] if self.cfg.client.sparse_downloads else self.model_bytes)

    def client_time(self, client: int) -> float:
        tier = self.cfg.tiers.tiers[self.tiers[client]]
        return client_seconds(tier, self.local_steps(client), self.download_bytes(client), self.upload_bytes(client), self.cfg.clock)

    # --- actors ---
    def start_actors(self, models: dict[str, ModelConfig] | None = None) -> None:
        """Start the pool; ``models`` are extra model keys every actor hosts (FEL sub-models)."""
        ensure_ray()
        n = self.cfg.num_actors or ray_cpus()
        self._refs = (ray.put(self.data.train), ray.put(self.data.partitions))
        self._models = dict(models or {})
        self.actors = [self._new_actor() for _ in range(n)]
        ray.get([a.ping.remote() for a in self.actors])

    def share_actors(self, owner: FederatedServer) -> None:
        """Train on ``owner``'s pool (the same list: a replacement by either is seen by both)."""
        self.actors, self._refs, self._models = owner.actors, owner._refs, owner._models

    def _new_actor(self):
        actor = ClientActor.options(num_cpus=self.cfg.actor_num_cpus, num_gpus=self.cfg.actor_num_gpus).remote(
            *self._refs, self.cfg.model
        )
        for key, model_cfg in self._models.items():
            actor.add_model.remote(key, model_cfg)  # actor calls run in order: before any training
        return actor

    def _replace_actor(self, i: int, dead=None) -> None:
        """A dead actor is replaced by a fresh one (same data refs) before the next round; ``dead``:
        the handle that failed, so a pool shared by several servers replaces it only once."""
        if dead is not None and self.actors[i] is not dead:
            return
        ray.kill(self.actors[i], no_restart=True)
        self.actors[i] = self._new_actor()
        ray.get(self.actors[i].ping.remote())

    def stop_actors(self) -> None:
        for a in self.actors:
            ray.kill(a)
        self.actors = []

    # --- one round ---
    def select(self, rnd: int) -> tuple[np.ndarray, dict]:
        """Clients that will report this round, after dropout, deadline and over-selection."""
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, rnd])
        want = cfg.clients_per_round
        n_select = int(np.ceil(want * (1 + cfg.over_selection)))
        chosen, _ = self.strategy.configure_fit(rng, self.clients, self.tiers, n_select, cfg.sampling)
        dropout = np.array([cfg.tiers.tiers[self.tiers[c]].dropout for c in chosen])
        alive = chosen[rng.random(len(chosen)) >= dropout]
        times = np.array([self.client_time(c) for c in alive])
        info = {"selected": int(len(chosen)), "dropped_out": int(len(chosen) - len(alive))}
        keep = np.ones(len(alive), dtype=bool)
        if cfg.deadline is not None:
            keep &= times <= cfg.deadline
        info["missed_deadline"] = int((~keep).sum())
        order = np.argsort(times[keep], kind="stable")
        kept, kept_times = alive[keep][order][:want], times[keep][order][:want]
        if cfg.deadline is not None and (~keep).any():
            round_time = cfg.deadline
        elif cfg.over_selection > 0 and len(kept) == want:
            round_time = float(kept_times[-1]) if len(kept_times) else 0.0
        else:
            round_time = float(kept_times.max()) if len(kept_times) else (cfg.deadline or 0.0)
        info["sim_round_seconds"] = round_time + cfg.clock.server_seconds
        return np.sort(kept), info

    def client_seed(self, rnd: int, client: int) -> int:
        return int(np.random.default_rng([self.cfg.seed, rnd, int(client)]).integers(2**31))

    def submit(self, state, clients: np.ndarray, rnd: int) -> list:
        """Start training ``clients`` from ``state`` (a State or its object ref), spread over the
        actors; returns the pending calls for ``gather``. Servers sharing a pool can all submit
        before any gathers, so their clients train at the same time."""
        cfg = self.cfg
        state_ref = state if isinstance(state, ray.ObjectRef) else ray.put(state)
        n_act = len(self.actors)
        pending = []
        for i, actor in enumerate(list(self.actors)):
            group = [int(c) for c in clients[i::n_act]]
            crash = len(group) // 2 if (cfg.fault_round == rnd and i == cfg.fault_actor % n_act and len(group)) else None
            seeds = [self.client_seed(rnd, c) for c in group]
            pending.append((actor.train_round.remote(state_ref, group, cfg.client, seeds, crash, self.model_key), group, i, actor))
        return pending

    def gather(self, pending: list, rnd: int) -> tuple[AggregatedUpdate, list, int]:
        """Sum the pending calls' updates; a dead actor's clients are lost (counted) and it is replaced."""
        acc = UpdateAccumulator(self.state, set(self.emb))
        stats, failed = [], 0
        for fut, group, i, actor in pending:
            try:
                agg, st = ray.get(fut)
            except ray.exceptions.RayActorError:
                failed += len(group)  # the actor died: its clients' updates are lost this round
                log.warning("round %d: client actor %d died; continuing with the survivors, restarting it", rnd, i)
                self._replace_actor(i, actor)
                continue
            acc.add_aggregate(agg)
            stats.extend(st)
        return acc.result(), stats, failed

    def run_round(self, rnd: int) -> dict:
        clients, info = self.select(rnd)
        start = time.perf_counter()
        return self.finish_round(rnd, clients, info, self.submit(self.state, clients, rnd), start)

    def finish_round(self, rnd: int, clients: np.ndarray, info: dict, pending: list, start: float) -> dict:
        update, stats, failed = self.gather(pending, rnd)
        self.state = self.strategy.aggregate_fit(self.state, update)
        wall = time.perf_counter() - start
        updates = len(stats)
        bytes_up = sum(s.bytes_up for s in stats)
        bytes_down = sum(self.download_bytes(int(c)) for c in clients)
        self.totals["client_updates"] += updates
        self.totals["bytes_up"] += bytes_up
        self.totals["dense_bytes_up"] += updates * self.model_bytes
        self.totals["bytes_down"] += bytes_down
        self.totals["sim_seconds"] += info["sim_round_seconds"]
        self.totals["train_wall_seconds"] += wall
        row = {"round": rnd, "client_updates": updates, "failed_updates": failed, "wall_seconds": wall,
               "sim_seconds": self.totals["sim_seconds"], "bytes_up": bytes_up, "bytes_down": bytes_down,
               "train_loss": float(np.mean([s.loss for s in stats])) if stats else float("nan"), **info}
        return row

    # --- evaluation ---
    def evaluate(self) -> tuple[dict, dict[str, float]]:
        self.model.load_state_dict(self.state)
        probs, labels = predict(self.model, self.test_batches)
        return self.score(labels.numpy(), probs.numpy())

    def score(self, labels: np.ndarray, probs: np.ndarray) -> tuple[dict, dict[str, float]]:
        """Test metrics of predictions ``probs`` (one per test row), overall and AUC per tier."""
        metrics = binary_metrics(labels, probs)
        per_tier = {}
        tc = self.data.test_client
        if (tc >= 0).any():
            row_tier = np.where(tc >= 0, self.tiers[np.maximum(tc, 0)], -1)
            for t, name in enumerate(self.cfg.tiers.names):
                mask = row_tier == t
                if mask.sum() > 1:
                    per_tier[name] = binary_metrics(labels[mask], probs[mask])["auc"]
        return metrics, per_tier

    # --- checkpoints ---
    def checkpoint_path(self) -> Path | None:
        return Path(self.cfg.checkpoint_dir) / "server.pt" if self.cfg.checkpoint_dir else None

    def save_checkpoint(self) -> None:
        path = self.checkpoint_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({"round": self.round, "state": self.state, "strategy": self.strategy.state_dict(),
                    "history": self.history, "totals": self.totals}, tmp)
        tmp.replace(path)

    def load_checkpoint(self) -> bool:
        path = self.checkpoint_path()
        if path is None or not path.exists():
            return False
        blob = torch.load(path, map_location="cpu", weights_only=False)
        self.round, self.state = blob["round"], blob["state"]
        self.strategy.load_state_dict(blob["strategy"])
        self.history, self.totals = blob["history"], blob["totals"]
        return True

    # --- the run ---
    def run(self, progress: bool = True, resume: bool = False) -> FederatedResult:
        cfg = self.cfg
        if resume and not self.load_checkpoint():
            log.info("no checkpoint to resume from; starting at round 1")
        wall_start = time.perf_counter()
        self.start_actors()
        metrics, per_tier = {}, {}
        try:
            bar = tqdm(total=cfg.rounds, initial=self.round, desc="federated", unit="round", disable=not progress)
            while self.round < cfg.rounds:
                self.round += 1
                row = self.run_round(self.round)
                if self.round % cfg.eval_every == 0 or self.round == cfg.rounds:
                    metrics, per_tier = self.evaluate()
                    row.update({"auc": metrics["auc"], "logloss": metrics["logloss"], "ne": metrics["ne"], "per_tier_auc": per_tier})
                    bar.set_postfix(auc=f"{metrics['auc']:.4f}")
                self.history.append(row)
                if cfg.checkpoint_dir and cfg.checkpoint_every and self.round % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
                bar.update(1)
            bar.close()
        finally:
            self.stop_actors()
        if not metrics:
            metrics, per_tier = self.evaluate()
        wall = time.perf_counter() - wall_start
        t = self.totals
        result = FederatedResult(
            final_auc=metrics["auc"], final_logloss=metrics["logloss"], final_ne=metrics["ne"], rounds=self.round,
            client_updates=t["client_updates"], wall_seconds=wall, train_wall_seconds=t["train_wall_seconds"],
            sim_seconds=t["sim_seconds"],
            client_updates_per_second=t["client_updates"] / t["train_wall_seconds"] if t["train_wall_seconds"] else 0.0,
            bytes_up=t["bytes_up"], bytes_down=t["bytes_down"], dense_bytes_up=t["dense_bytes_up"],
            per_tier_auc=per_tier, history=self.history, config=config_to_dict(cfg),
        )
        if cfg.plot:
            plot_history(result, cfg.plot)
        return result


def run(cfg: FederatedConfig, progress: bool = True, resume: bool = False) -> FederatedResult:
    """Run federated training; the Python API behind ``fedrec train --config``."""
    return FederatedServer(cfg).run(progress=progress, resume=resume)


def plot_history(result: FederatedResult, out: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [h for h in result.history if "auc" in h]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    axes[0].plot([h["round"] for h in rows], [h["auc"] for h in rows], marker="o")
    axes[0].set_xlabel("round")
    axes[1].plot([h["sim_seconds"] for h in rows], [h["auc"] for h in rows], marker="o")
    axes[1].set_xlabel("simulated seconds")
    for ax in axes:
        ax.set_ylabel("test AUC")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{result.config.get('strategy', {}).get('name', '')}: final AUC {result.final_auc:.4f}")
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


