"""One model trained federated: its global state, strategy, update pipeline, client facts and record.

``FederatedRun`` is the synchronous algorithm (FedAvg and its family): each round it selects
clients (strategy sampling, then dropout, deadline and over-selection on the simulated clock),
has them train, aggregates what arrives through the pipeline and takes a server step. The round
loop (``fedrec.runtime.loop``) drives it; FedBuff overrides only ``plan`` and ``finish``, FEL and
the fairness study run several of them side by side on one pool.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import ray
import torch

from data_pipeline.errors import ConfigError
from fedrec.client.config import ClientTrainConfig
from fedrec.client.layout import ModelLayout
from fedrec.client.private import check_single_owner
from fedrec.energy import EnergyModel
from fedrec.metrics import binary_metrics
from fedrec.model import build_model, dlrm_initial_state, is_plain_dlrm, predict
from fedrec.pipeline import Arrivals, ModelShapes, ServerContext, build_pipeline
from fedrec.pipeline.downlink import DeltaDownloads
from fedrec.runtime.data import FederatedData
from fedrec.runtime.facts import ClientFacts, RoundTimes, client_tiers
from fedrec.runtime.pool import ClientPool, Gathered, Pending
from fedrec.selection import ClientView, Feedback, make_policy
from fedrec.strategies import make_strategy
from fedrec.updates import AggregatedUpdate, StateChange

log = logging.getLogger(__name__)

TOTALS = ("client_updates", "failed_updates", "bytes_up", "bytes_down", "dense_bytes_up", "dense_bytes_down", "sim_seconds",
          "train_wall_seconds")


class ModelDiverged(ConfigError):
    """A run's server step produced non-finite weights. For a plain run the usual cause is a step
    size too large (the message says which fields to lower); under an attack it is the attack
    succeeding, which a benchmark records instead of stopping (``key`` and ``round`` say which run
    and when)."""

    def __init__(self, key: str, name: str, rnd: int, lr: float, epochs: int) -> None:
        self.key, self.name, self.round, self.lr, self.epochs = key, name, rnd, lr, epochs
        super().__init__("client.lr", f"model {name!r} diverged (non-finite weights) in round {rnd}; lower "
                                      f"client.lr ({lr}) or client.local_epochs ({epochs})")

    def __reduce__(self):
        return (ModelDiverged, (self.key, self.name, self.round, self.lr, self.epochs))


@dataclass
class Submission:
    clients: np.ndarray
    config: ClientTrainConfig
    tag: int = 0  # algorithm-specific (FedBuff: the server step the updates land in)


@dataclass
class Selected:
    """Who trains this round on the simulated clock: the clients kept (each on its target), those
    that trained but missed the deadline (their energy was spent all the same), and the round's
    simulated seconds."""

    kept: RoundTimes
    missed: RoundTimes
    round_seconds: float


@dataclass
class RoundPlan:
    submissions: list[Submission]
    info: dict = field(default_factory=dict)  # row fields known before training
    selected: Selected | None = None  # sync rounds: for the energy account and the selection policy's feedback


class FederatedRun:
    """``clients`` restricts selection to a subset (a FEL cluster); ``key`` names this run's model
    on the shared pool; ``name`` labels it in logs and trackers."""

    def __init__(self, cfg, data: FederatedData, pool: ClientPool | None, *, key: str = "default",
                 clients: np.ndarray | None = None, name: str | None = None, pipeline=None, model_fn=None) -> None:
        self.cfg, self.data, self.pool, self.key = cfg, data, pool, key
        self.name = name or key
        n = data.num_clients
        self.clients = np.arange(n) if clients is None else np.sort(np.asarray(clients, dtype=np.int64))
        self.model_fn = model_fn  # a custom model builder; None: cfg.model.name
        if is_plain_dlrm(cfg.model, model_fn):
            # The initial weights without importing TorchRec (fedrec.model.dlrm_initial_state says
            # why); the module is built only if the driver itself scores (``model``).
            self._model = None
            self.state = dlrm_initial_state(data.train.spec, cfg.model, seed=cfg.seed)
            self.layout = ModelLayout.of(self.state, data.train.spec)
        else:
            self._model = (model_fn or build_model)(data.train.spec, cfg.model, seed=cfg.seed)
            self.state = {k: v.detach().clone() for k, v in self._model.state_dict().items()}
            self.layout = ModelLayout.of_module(self._model, data.train.spec)
        self.tiers = client_tiers(cfg, data)
        self.private_tables = sorted(self.layout.table_of_feature[f] for f in cfg.model.private)
        self.facts = ClientFacts(cfg, data, self.state, self.layout, self.tiers, set(self.private_tables))
        for f in cfg.model.private:
            check_single_owner(data.train, data.partitions, f)
        self.uploaded_tables: set[str] = set()
        self.strategy = make_strategy(cfg.strategy, cfg.client)
        shared = {k: v for k, v in self.state.items() if k not in self.private_tables}  # what travels
        self.shared_tables = {k: v for k, v in self.layout.tables.items() if k not in self.private_tables}
        self.pipeline = pipeline if pipeline is not None else build_pipeline(
            cfg, ModelShapes.of(self.state, self.layout.tables), n, state=shared, tables=self.shared_tables)
        downlink = getattr(getattr(cfg, "compression", None), "downlink", "none")
        self.downloads = DeltaDownloads(cfg, self.state, self.layout.tables, data) if downlink == "same" else None
        self._pipeline_ref = None
        self.round = 0
        self.resumed_from_round = 0
        self.history: list[dict] = []
        self.totals: dict = dict.fromkeys(TOTALS, 0)
        self.energy = EnergyModel(cfg.energy, cfg.tiers, self.tiers)
        learns = cfg.mode == "sync" and cfg.selection.policy != "random"
        self.selector = make_policy(cfg.selection, self.client_view()) if learns else None
        self._eval_batches: dict[str, list] = {}
        self._last_eval: dict = {}
        if pool is not None:  # None: the server side alone (selection, aggregation, evaluation)
            pool.register(key, cfg.model, self.state, model_fn)

    @property
    def model(self) -> torch.nn.Module:
        """The run's TorchRec module holding the current state, built on first use (without
        disturbing torch's generator: the run's later draws stay what they were)."""
        if self._model is None:
            with torch.random.fork_rng():
                self._model = build_model(self.data.train.spec, self.cfg.model, seed=self.cfg.seed)
        self._model.load_state_dict(self.state)
        return self._model

    # --- selection (sync) ---
    def seed_of(self, rnd: int, client: int) -> int:
        """A client's training seed in a round: the same whichever actor trains it."""
        return int(np.random.default_rng([self.cfg.seed, rnd, int(client)]).integers(2**31))

    def client_view(self) -> ClientView:
        seconds, joules = self.facts.expected_by_target()
        return ClientView(self.tiers, np.array([len(p) for p in self.data.partitions]), seconds, joules,
                          self.facts.targets.count)

    def select(self, rnd: int) -> tuple[np.ndarray, ClientTrainConfig, dict]:
        """Clients that report this round (after dropout, deadline and over-selection), the
        training instructions the strategy gives them, and what happened in selection."""
        clients, config, info, _ = self.select_round(rnd)
        return clients, config, info

    def select_round(self, rnd: int) -> tuple[np.ndarray, ClientTrainConfig, dict, Selected]:
        """``select``, plus the clients' times and targets on the simulated clock. The policy
        (``selection.policy``) picks the candidates and their targets; ``random`` is the strategy's
        own sampling, each client on its tier's first target."""
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, rnd])
        want = cfg.clients_per_round
        n_select = int(np.ceil(want * (1 + cfg.over_selection)))
        if self.selector is None:
            fit = self.strategy.configure_fit(rng, self.clients, self.tiers, n_select, cfg.sampling)
            chosen, targets, config = fit.clients, np.zeros(len(fit.clients), dtype=np.int64), fit.config
        else:
            chosen, targets = self.selector.select(rnd, rng, self.clients, n_select)
            config = self.strategy.fit_config()
        up = rng.random(len(chosen)) >= self.facts.dropout[chosen]
        alive = chosen[up]
        timed = self.facts.round_times(rnd, alive, targets[up])
        times = timed.seconds
        info = {"selected": int(len(chosen)), "dropped_out": int(len(chosen) - len(alive))}
        keep = np.ones(len(alive), dtype=bool) if cfg.deadline is None else times <= cfg.deadline
        info["missed_deadline"] = int((~keep).sum())
        order = np.argsort(times[keep], kind="stable")
        kept_at = np.flatnonzero(keep)[order][:want]
        kept, kept_times = alive[kept_at], times[kept_at]
        if cfg.deadline is not None and (~keep).any():
            round_time = cfg.deadline
        elif cfg.over_selection > 0 and len(kept) == want:
            round_time = float(kept_times[-1]) if len(kept_times) else 0.0
        else:
            round_time = float(kept_times.max()) if len(kept_times) else (cfg.deadline or 0.0)
        info["sim_round_seconds"] = round_time + cfg.clock.server_seconds
        if self.selector is not None:
            names = self.facts.targets.names  # which targets the policy trained on, by name
            info["targets"] = dict(sorted(Counter(names[self.tiers[c]][a] for c, a in zip(timed.clients, timed.targets)).items()))
        # Over-selected clients still running when the round closes and deadline-missers trained too.
        late = np.setdiff1d(np.arange(len(alive)), kept_at)
        selected = Selected(timed.take(np.sort(kept_at)), timed.take(late), info["sim_round_seconds"])
        return np.sort(kept), config, info, selected

    # --- the algorithm's two parts ---
    def plan(self, rnd: int) -> RoundPlan:
        clients, config, info, selected = self.select_round(rnd)
        return RoundPlan([Submission(clients, config)], info, selected)

    def finish(self, rnd: int, plan: RoundPlan, gathered: list[Gathered]) -> dict:
        """Aggregate what arrived, take the server step, and return the round's row."""
        arrivals = [a for g in gathered for a in g.arrivals]
        self.apply(rnd, self.aggregate(rnd, arrivals))
        sim = plan.info["sim_round_seconds"]
        clients = np.concatenate([s.clients for s in plan.submissions])
        row = self.record(rnd, gathered, clients, sim, plan.info)
        if plan.selected is not None:
            row.update(self.account_selected(rnd, plan.selected, gathered))
        return row

    # --- shared steps ---
    def submit(self, pool: ClientPool, sub: Submission, rnd: int) -> Pending:
        """Start ``sub``'s clients training: from the pool's copy of the global model, or, with
        compressed downloads, each from the copy it holds after this round's download."""
        seeds = [self.seed_of(rnd, c) for c in sub.clients]
        if self.downloads is not None:
            starts = [self.downloads.download(int(c), self.state) for c in sub.clients]
            return pool.submit_from(self.key, sub.clients, starts, sub.config, seeds, self.pipeline_ref(), rnd)
        return pool.submit(self.key, sub.clients, sub.config, seeds, self.pipeline_ref(), rnd)

    def pipeline_ref(self):
        if self._pipeline_ref is None:
            self._pipeline_ref = ray.put(self.pipeline)
        return self._pipeline_ref

    def aggregate(self, rnd: int, arrivals: list[Arrivals]) -> AggregatedUpdate:
        ctx = ServerContext(rnd, self.cfg.seed, self.data.num_clients)
        for a in arrivals:  # which tables' rows left a device (a private one never does)
            for u in a.updates if a.updates is not None else [a.aggregate]:
                if not hasattr(u, "sparse"):  # encoded on the wire: its schema holds the shared tables only
                    self.uploaded_tables |= set(self.shared_tables)
                    continue
                self.uploaded_tables |= {n for n, r in u.sparse.items() if len(r[0] if isinstance(r, tuple) else r.ids)}
        return self.pipeline.server_side(arrivals, ctx)

    def apply(self, rnd: int, update: AggregatedUpdate) -> None:
        """The server step, then the change the actors need (only rows the step wrote)."""
        if update.clients == 0:
            return
        self.strategy.aggregate_fit(self.state, update)
        change = StateChange.of(self.state, update, self.layout.tables)
        if not all(torch.isfinite(t).all() for t in (*change.dense.values(), *(r for _, r in change.rows.values()))):
            raise ModelDiverged(self.key, self.name, rnd, self.cfg.client.lr, self.cfg.client.local_epochs)
        if self.pool is not None:
            self.pool.publish(self.key, change)

    def record(self, rnd: int, gathered: list[Gathered], sent_to: np.ndarray, sim: float, info: dict,
               bytes_up: int | None = None) -> dict:
        """Add the round to the totals and return its row. Bytes up are what the clients sent
        (measured after the pipeline's client steps) unless the algorithm counts them itself."""
        stats = [s for g in gathered for s in g.stats]
        failed = sum(g.failed for g in gathered)
        up = sum(s.bytes_up for s in stats) if bytes_up is None else bytes_up
        down = int(self.facts.down[sent_to].sum()) if len(sent_to) else 0
        t = self.totals
        t["client_updates"] += len(stats)
        t["failed_updates"] += failed
        t["bytes_up"] += up
        t["bytes_down"] += down
        t["dense_bytes_up"] += len(stats) * self.facts.model_bytes
        t["dense_bytes_down"] = t.get("dense_bytes_down", 0) + len(sent_to) * self.facts.model_bytes
        t["sim_seconds"] += sim
        return {"round": rnd, "client_updates": len(stats), "failed_updates": failed, "sim_seconds": t["sim_seconds"],
                "bytes_up": up, "bytes_down": down,
                "train_loss": float(np.mean([s.loss for s in stats])) if stats else float("nan"),
                **info, "sim_round_seconds": sim}

    # --- energy ---
    def account_energy(self, clients: np.ndarray, compute_joules: np.ndarray, busy_seconds: np.ndarray,
                       bytes_up: np.ndarray, bytes_down: np.ndarray, round_seconds: float) -> dict:
        """Add a round's energy (``EnergyModel.round``) to the totals; returns the row's field."""
        e = self.energy.round(clients, compute_joules, busy_seconds, bytes_up, bytes_down, round_seconds)
        e.add_to(self.totals)
        return e.row()

    def account_selected(self, rnd: int, sel: Selected, gathered: list[Gathered]) -> dict:
        """A sync round's energy: the kept clients trained, moved their bytes and waited for the
        round to end; the late ones (over-selected or past the deadline) trained and downloaded
        until it closed. The policy learns from the reports."""
        sent = {s.client: s.bytes_up for g in gathered for s in g.stats}
        k, late, end = sel.kept, sel.missed, sel.round_seconds
        up = np.array([sent.get(int(c), self.facts.up[c]) for c in k.clients], dtype=np.float64)
        cut = np.minimum(1.0, end / np.maximum(late.seconds, 1e-12))  # the share of their work done by the end
        clients = np.concatenate([k.clients, late.clients])
        joules = np.concatenate([k.compute_joules, late.compute_joules * cut])
        busy = np.concatenate([k.seconds, np.full(len(late.clients), end)])
        ups = np.concatenate([up, np.zeros(len(late.clients))])
        downs = self.facts.down[clients]
        row = self.account_energy(clients, joules, busy, ups, downs, end)
        if self.selector is not None:
            stats = {s.client: s.loss for g in gathered for s in g.stats}
            got = np.array([int(c) in stats for c in k.clients], dtype=bool)
            per = self.energy.per_client(k.clients, k.compute_joules, k.seconds, up, self.facts.down[k.clients], end)
            self.selector.observe(Feedback(rnd, k.clients[got], k.targets[got],
                                           np.array([stats[int(c)] for c in k.clients[got]], dtype=np.float64),
                                           k.seconds[got], per[got], end))
        return row

    # --- evaluation ---
    def predict(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Labels and probabilities of ``split`` on the driver (the global model; no private rows)."""
        if split not in self._eval_batches:
            examples, _ = self.data.heldout(split)
            self._eval_batches[split] = list(examples.iter_batches(4096))
        probs, labels = predict(self.model, self._eval_batches[split])
        return labels.numpy(), probs.numpy()

    def score(self, split: str, labels: np.ndarray, probs: np.ndarray) -> tuple[dict, dict[str, float]]:
        """Metrics of predictions on ``split``, overall and AUC per client tier."""
        metrics = binary_metrics(labels, probs)
        per_tier = {}
        _, row_client = self.data.heldout(split)
        if (row_client >= 0).any():
            row_tier = np.where(row_client >= 0, self.tiers[np.maximum(row_client, 0)], -1)
            for t, name in enumerate(self.cfg.tiers.names):
                mask = row_tier == t
                if mask.sum() > 1:
                    per_tier[name] = binary_metrics(labels[mask], probs[mask])["auc"]
        return metrics, per_tier

    def _on_clients(self, split: str, ranking: bool) -> tuple[np.ndarray, np.ndarray, dict]:
        """The clients score their own held-out rows (with their private rows): labels, probs and
        the ranking / trained-client extras."""
        examples, _ = self.data.heldout(split)
        refit = self.cfg.client if self.private_tables and self.cfg.client.eval_refit_private_epochs else None
        parts = self.pool.evaluate(self.key, split, ranking, refit)
        probs = np.full(len(examples), np.nan, dtype=np.float64)
        trained = np.zeros(len(examples), dtype=bool)
        for p in parts:
            if not np.isfinite(p["probs"]).all():  # finite weights whose activations overflow
                raise ModelDiverged(self.key, self.name, self.round, self.cfg.client.lr, self.cfg.client.local_epochs)
            probs[p["rows"]] = p["probs"]
            trained[p["rows"]] = p["trained"]
        extra: dict = {}
        if self.private_tables:
            for name, mask in (("trained", trained), ("untrained", ~trained)):
                if 0 < examples.labels[mask].sum() < mask.sum():
                    extra[f"auc_{name}_clients"] = binary_metrics(examples.labels[mask], probs[mask])["auc"]
        if ranking and all("ranking" in p for p in parts):
            users = sum(p["ranking"]["users"] for p in parts)
            if users:
                extra["hr_at_10"] = sum(p["ranking"]["hr_sum"] for p in parts) / users
                extra["ndcg_at_10"] = sum(p["ranking"]["ndcg_sum"] for p in parts) / users
        return examples.labels, probs, extra

    def evaluate(self, final: bool = False) -> dict:
        """Test metrics (``auc``, ``logloss``, ``ne``, ``per_tier_auc``) and validation ones, scored
        by the clients themselves (each with its private rows); ``final`` adds HR@10 and nDCG@10
        over the whole catalogue (unless the config's ``eval_ranking`` is off). Without a pool (the
        server side alone) the driver scores the global model."""
        out = {}
        has_validation = self.data.validation is not None and len(self.data.validation) > 0
        ranking = final and self.data.catalogue is not None and self.cfg.eval_ranking
        for split in (["validation"] if has_validation else []) + ["test"]:
            if self.pool is None:
                labels, probs, extra = *self.predict(split), {}
                if not np.isfinite(probs).all():
                    raise ModelDiverged(self.key, self.name, self.round, self.cfg.client.lr, self.cfg.client.local_epochs)
            else:
                labels, probs, extra = self._on_clients(split, ranking)
            metrics, per_tier = self.score(split, labels, probs)
            if split == "validation":
                out.update({"validation_auc": metrics["auc"], "validation_logloss": metrics["logloss"],
                            **{f"validation_{k}": v for k, v in extra.items() if "at_10" in k}})
            else:
                out.update({"auc": metrics["auc"], "logloss": metrics["logloss"], "ne": metrics["ne"],
                            "per_tier_auc": per_tier, **{("test_" + k if "at_10" in k else k): v for k, v in extra.items()}})
        self._last_eval = {"round": self.round, "final": final, **out}
        return out

    def final_metrics(self) -> dict:
        if self._last_eval.get("round") != self.round or not self._last_eval.get("final"):
            self.evaluate(final=True)
        return self._last_eval

    def restore_devices(self, actors: list[int], checkpoint: dict | None) -> None:
        """Actors were replaced: their clients' private rows come back from the last checkpoint
        (or, without one, restart from their initial values: logged)."""
        if not self.private_tables or self.pool is None:
            return
        blobs = (checkpoint or {}).get("runs", {}).get(self.key, {}).get("private")
        if blobs is None:
            log.warning("run %s: actors %s were replaced and no checkpoint holds their clients' private rows: "
                        "those clients restart from the initial rows", self.name, actors)
            return
        self.pool.import_private(self.key, blobs, actors)

    # --- checkpoints ---
    def state_dict(self) -> dict:
        blob = {"round": self.round, "state": self.state, "strategy": self.strategy.state_dict(),
                "pipeline": self.pipeline.state_dict(), "history": self.history, "totals": self.totals,
                "uploaded_tables": sorted(self.uploaded_tables)}
        if self.selector is not None:
            blob["selector"] = self.selector.state_dict()  # what the policy has learned
        if self.private_tables and self.pool is not None:
            blob["private"] = self.pool.export_private(self.key)  # the devices' state, per actor
        if self.pool is not None and self.pipeline.stateful_clients:
            blob["client_state"] = self.pool.export_client_state(self.key)  # error-feedback memory lives there
        if self.downloads is not None:
            blob["downloads"] = self.downloads.state_dict()  # the copies clients hold
        return blob

    def load_state_dict(self, blob: dict) -> None:
        self.round = blob["round"]
        self.resumed_from_round = blob["round"]
        for name, t in blob["state"].items():
            self.state[name].copy_(t)
        self.strategy.load_state_dict(blob["strategy"])
        self.pipeline.load_state_dict(blob.get("pipeline", {}))
        self.history, self.totals = blob["history"], blob["totals"]
        self.uploaded_tables = set(blob.get("uploaded_tables", []))
        if self.selector is not None and "selector" in blob:
            self.selector.load_state_dict(blob["selector"])
        if self.downloads is not None:
            self.downloads.load_state_dict(blob["downloads"])
        if self.pool is not None:
            self.pool.register(self.key, self.cfg.model, self.state, self.model_fn)  # actors get the whole state again
            if blob.get("private") is not None:
                self.pool.import_private(self.key, blob["private"])
            if "client_state" in blob:
                self.pool.import_client_state(self.key, blob["client_state"])
