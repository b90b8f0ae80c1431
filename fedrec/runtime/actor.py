"""Client actors: each Ray actor hosts many virtual clients.

An actor receives the training examples and the client partition once (through the object store)
and keeps, per model key, its own copy of the global model, which the pool patches with only what
changed each round (``StateChange``: dense tensors and the rows the server wrote). Per round it
trains its assigned clients, runs the update pipeline's client steps on each update (with that
client's persistent step state), and returns either one pre-aggregated sum or, when the pipeline
needs them, the individual updates.

The actor imports torch but not TorchRec on the batched path (the trainer works from the state
dict's layout), which keeps actor start-up short; the per-client TorchRec path builds its DLRM on
first use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import ray
import torch

from data_pipeline.batches import NEGATIVE_TIMESTAMP
from fedrec.client.batched import BatchedTrainer, dlrm_probs
from fedrec.client.config import ClientTrainConfig
from fedrec.client.data import ClientData
from fedrec.client.evaluate import model_tables, rank_clients
from fedrec.client.layout import ModelLayout
from fedrec.client.local import LocalTrainer
from fedrec.client.private import PrivateRows, owned_rows
from fedrec.model import ModelConfig, is_plain_dlrm, predict
from fedrec.pipeline import Arrivals, ClientContext, UpdatePipeline
from fedrec.updates import ClientStart, State, StateChange

REFIT_SEED = 1 << 40  # offsets a client's seed for its reconstruction passes (apart from its training epochs')


@dataclass
class ClientStat:
    client: int
    examples: int
    steps: int
    loss: float
    bytes_up: int  # serialized size of what the client sent (after the pipeline's client steps)


@dataclass
class ModelSync:
    """How an actor's copy of a model gets to ``version``: the whole state (first use, a fresh
    actor) or the change from ``version - 1``. The payload travels as a separate argument so Ray
    resolves its object ref."""

    kind: str  # "full" | "change"
    version: int
    model_cfg: ModelConfig | None = None
    model_fn: object = None  # a custom model builder (fedrec.run(..., model_fn=...)); None: model_cfg.name


@dataclass
class _Slot:
    model_cfg: ModelConfig
    state: State
    version: int
    layout: ModelLayout
    trainers: dict = field(default_factory=dict)
    private: PrivateRows | None = None  # this actor's clients' rows of the model's private tables
    model_fn: object = None
    refitted: tuple | None = None  # (version, refit config, rows): evaluation's refit copy of ``private``

    @property
    def batched(self) -> bool:
        """The stacked fast path covers TorchRec's DLRM; any other model trains client by client."""
        return is_plain_dlrm(self.model_cfg, self.model_fn)


@dataclass
class ActorData:
    """What an actor is sent once: the training rows of the clients it owns (``partitions`` maps
    each to its rows in ``train``), and for evaluation on the clients their held-out rows (with each
    row's client and its position in the full split), the catalogue and each client's user."""

    train: object  # Examples: the owned clients' rows only
    partitions: dict  # client -> rows of ``train``
    heldout: dict = field(default_factory=dict)  # split -> (Examples, row client, row position in the split)
    catalogue: object | None = None
    client_users: object | None = None
    n_actors: int = 1
    num_clients: int = 0

    @staticmethod
    def shard(data, index: int, n_actors: int) -> ActorData:
        """Actor ``index``'s share of ``data`` (a FederatedData): its clients are those whose id is
        ``index`` modulo ``n_actors``; it receives their rows and nothing else, so an actor's memory
        grows with the clients it trains, not with the dataset."""
        owned = np.arange(index, data.num_clients, n_actors, dtype=np.int64)
        sizes = np.array([len(data.partitions[c]) for c in owned], dtype=np.int64)
        rows = np.concatenate([data.partitions[c] for c in owned]) if len(owned) else np.zeros(0, dtype=np.int64)
        starts = np.r_[0, np.cumsum(sizes)]
        partitions = {int(c): np.arange(starts[i], starts[i + 1], dtype=np.int64) for i, c in enumerate(owned)}
        heldout = {}
        for split in ("validation", "test"):
            examples = data.validation if split == "validation" else data.test
            if examples is None or len(examples) == 0:
                continue
            row_client = data.validation_client if split == "validation" else data.test_client
            pos = np.flatnonzero((row_client >= 0) & (row_client % n_actors == index))
            heldout[split] = (examples.take(pos), row_client[pos], pos)
        return ActorData(data.train.take(rows), partitions, heldout, data.catalogue, data.client_users, n_actors,
                         data.num_clients)


class ClientActorImpl:
    def __init__(self, index: int, private_max_bytes: int = 1 << 30, spill_dir: str | None = None) -> None:
        torch.set_num_threads(1)  # one CPU per actor; intra-op threads would oversubscribe
        self.index = index
        self.data: ClientData | None = None
        self.extra: ActorData | None = None
        self.slots: dict[str, _Slot] = {}
        self.client_state: dict[tuple[str, int], dict] = {}
        self.private_max_bytes, self.spill_dir = private_max_bytes, spill_dir
        self._pending_private: dict[str, dict] = {}
        self.own_start_trainers: dict[str, object] = {}  # train_from's trainers, per model key

    def set_data(self, data: ActorData) -> bool:
        """New data: models and client state built on the old data are dropped."""
        self.data = ClientData(data.train, data.partitions)
        self.extra = data
        self.slots.clear()
        self.client_state.clear()
        self.own_start_trainers.clear()
        return True

    def owned(self) -> np.ndarray:
        """The clients this actor trains (client id modulo the number of actors)."""
        return np.arange(self.index, self.extra.num_clients, self.extra.n_actors, dtype=np.int64)

    def _private_store(self, key: str, model_cfg: ModelConfig, state: State, layout: ModelLayout) -> PrivateRows | None:
        if not model_cfg.private:
            return None
        owned = self.owned()
        init = {}
        for f in model_cfg.private:
            name = layout.table_of_feature[f]
            ids = owned_rows(self.data.examples, self.data.partitions, f, owned)
            init[name] = (ids, state[name][torch.from_numpy(ids)].numpy())
        store = PrivateRows(init, self.private_max_bytes, self.spill_dir, tag=f"{self.index}-{key}")
        if key in self._pending_private:
            store.load_state_dict(self._pending_private.pop(key))
        return store

    def _sync(self, key: str, sync: ModelSync | None, payload) -> _Slot:
        if sync is not None:
            if sync.kind == "full":
                state = {n: t.clone() for n, t in payload.items()}
                slot = _Slot(sync.model_cfg, state, sync.version, None, model_fn=sync.model_fn)
                if slot.batched:
                    slot.layout = ModelLayout.of(state, self.data.spec)
                else:  # the module tells where its tables are
                    local = LocalTrainer(self.data, sync.model_cfg, sync.model_fn)
                    slot.trainers["local"], slot.layout = local, local.layout
                old = self.slots.get(key)
                slot.private = old.private if old is not None and old.private is not None else None
                if slot.private is None:
                    slot.private = self._private_store(key, sync.model_cfg, state, slot.layout)
                self.slots[key] = slot
            else:
                slot = self.slots[key]
                if slot.version != sync.version - 1:
                    raise RuntimeError(f"actor {self.index}: model {key!r} at version {slot.version}, change is for {sync.version}")
                payload.apply_to(slot.state)
                slot.version = sync.version
        return self.slots[key]

    def sync(self, key: str, sync: ModelSync | None, payload) -> int:
        return self._sync(key, sync, payload).version

    def train(
        self, key: str, sync: ModelSync | None, payload: State | StateChange | None, clients: list[int],
        cfg: ClientTrainConfig, seeds: list[int], pipeline: UpdatePipeline, rnd: int,
    ) -> tuple[Arrivals, list[ClientStat]]:
        """Train ``clients`` of model ``key`` from its current global version; client steps run on
        each update before it is packed for the driver."""
        slot = self._sync(key, sync, payload)
        if slot.private is not None and cfg.refit_private_epochs:
            self._fit(slot, clients, cfg.private_only(cfg.refit_private_epochs), [s + REFIT_SEED for s in seeds],
                      slot.private)
        results = self._fit(slot, clients, cfg, seeds, slot.private)
        if slot.private is not None:
            for r in results:
                if set(r.update.sparse) & set(slot.private.ids):  # never: the trainers keep them on the device
                    raise AssertionError(f"client {r.update.client}: a private table is in its upload")
        return self._send(key, results, seeds, pipeline, rnd)

    def _fit(self, slot: _Slot, clients: list[int], cfg: ClientTrainConfig, seeds: list[int],
             private: PrivateRows | None) -> list:
        """Train ``clients`` from the slot's global model (batched where the model allows)."""
        if cfg.batched and slot.batched:
            trainer = slot.trainers.get("batched") or slot.trainers.setdefault("batched", BatchedTrainer(self.data, slot.layout))
            return trainer.train_many(clients, slot.state, cfg, seeds, private)
        trainer = self._local(slot)
        trainer.load_global(slot.state)
        return [trainer.train(c, slot.state, cfg, s, private) for c, s in zip(clients, seeds)]

    def _eval_rows(self, slot: _Slot, refit: ClientTrainConfig | None) -> PrivateRows | None:
        """The private rows evaluation scores with: the stored ones, or (``refit``) a copy every
        owned client has refitted to the current global model on its training rows, made once
        per model version (validation and test share it) and never written back."""
        epochs = refit.eval_refit_private_epochs if refit is not None else 0
        if slot.private is None or not epochs:
            return slot.private
        spec = refit.private_only(epochs)
        if slot.refitted is None or slot.refitted[:2] != (slot.version, spec):
            rows = slot.private.copy()
            clients = [int(c) for c in self.owned() if len(self.data.partitions.get(int(c), ()))]
            # Seeds by client only: the same refit after a resume (whose model versions restart).
            self._fit(slot, clients, spec, [REFIT_SEED + c for c in clients], rows)
            slot.refitted = (slot.version, spec, rows)
        return slot.refitted[2]

    def evaluate(self, key: str, split: str, ranking: bool = False, k: int = 10,
                 refit: ClientTrainConfig | None = None) -> dict:
        """This actor's clients score their own ``split`` rows (global weights + their private
        rows, refitted first with ``refit.eval_refit_private_epochs``): the rows' positions and
        probabilities, whether each row's client has trained its private rows, and with
        ``ranking`` the clients' summed HR@k / nDCG@k over the catalogue."""
        slot = self.slots[key]
        ex, row_client, rows = self.extra.heldout[split]
        owned = self.owned()
        score = self._scorer(slot, self._eval_rows(slot, refit))
        probs = score(ex)
        trained = np.zeros(len(rows), dtype=bool)
        if slot.private is not None:
            for name, f in slot.layout.tables.items():
                if name in slot.private.ids:
                    trained |= slot.private.is_trained(name, ex.values[f][ex.offsets[f][:-1]])
        out = {"rows": rows, "probs": probs, "trained": trained}
        if ranking and self.extra.catalogue is not None:
            out["ranking"] = rank_clients([int(c) for c in owned], self.extra.client_users, score, self.extra.catalogue,
                                          ex, row_client, lambda c: self._seen_items(c, split), k)
        return out

    def _local(self, slot: _Slot) -> LocalTrainer:
        if "local" not in slot.trainers:
            slot.trainers["local"] = LocalTrainer(self.data, slot.model_cfg, slot.model_fn)
        return slot.trainers["local"]

    def _scorer(self, slot: _Slot, private: PrivateRows | None):
        """examples -> probabilities under the global weights with ``private`` rows."""
        tables = model_tables(slot.state, private)
        if slot.batched:
            return lambda ex: dlrm_probs(ex, slot.state, slot.layout, tables)
        model = self._local(slot).model
        model.load_state_dict({**slot.state, **tables})
        return lambda ex: predict(model, ex.iter_batches(8192))[0].numpy()

    def _seen_items(self, client: int, split: str) -> np.ndarray:
        """Items a client has already interacted with before ``split``: never recommended to it."""
        ex = self.data.client(client)[0]
        seen = [ex.values["item"][ex.timestamps != NEGATIVE_TIMESTAMP]]  # real interactions, not sampled negatives
        if split == "test" and "validation" in self.extra.heldout:
            val, val_client, _ = self.extra.heldout["validation"]
            seen.append(val.values["item"][(val_client == client) & (val.timestamps != NEGATIVE_TIMESTAMP)])
        return np.unique(np.concatenate(seen))

    def export_private(self, key: str) -> dict | None:
        slot = self.slots.get(key)
        return None if slot is None or slot.private is None else slot.private.state_dict()

    def import_private(self, key: str, blob: dict | None) -> bool:
        """Private rows from a checkpoint (applied now, or when the model first arrives)."""
        if blob is None:
            return False
        slot = self.slots.get(key)
        if slot is not None and slot.private is not None:
            slot.private.load_state_dict(blob)
            slot.refitted = None  # refitted from the rows just replaced
        else:
            self._pending_private[key] = blob
        return True

    def train_from(self, key: str, starts: list[ClientStart], clients: list[int], cfg: ClientTrainConfig,
                   seeds: list[int], pipeline: UpdatePipeline, rnd: int) -> tuple[Arrivals, list[ClientStat]]:
        """Train each client from its own weights (``starts``: a gossip node's model, a client's
        compressed copy of the global one) instead of this actor's copy of model ``key``."""
        from fedrec.client.batched import BatchedTrainer

        trainer = self.own_start_trainers.get(key)
        if trainer is None:
            layout = ModelLayout.of([*starts[0].dense, *starts[0].rows], self.data.spec)
            trainer = self.own_start_trainers.setdefault(key, BatchedTrainer(self.data, layout))
        return self._send(key, trainer.train_many(clients, None, cfg, seeds, starts=starts), seeds, pipeline, rnd)

    def _send(self, key: str, results: list, seeds: list[int], pipeline: UpdatePipeline, rnd: int):
        """Run the pipeline's client steps on each result and pack what goes back to the driver."""
        ctxs = [ClientContext(r.update.client, rnd, seed, self.client_state.setdefault((key, r.update.client), {}))
                for r, seed in zip(results, seeds)]
        updates = pipeline.client_side_many([r.update for r in results], ctxs)
        stats = [ClientStat(r.update.client, r.examples, r.steps, r.loss, u.nbytes()) for r, u in zip(results, updates)]
        return pipeline.pack(updates), stats

    def export_client_state(self, key: str) -> dict[int, dict]:
        """The persistent step state of this actor's clients of model ``key`` (for checkpoints)."""
        return {c: st for (k, c), st in self.client_state.items() if k == key}

    def import_client_state(self, key: str, states: dict[int, dict]) -> bool:
        """Restore clients' step state from a checkpoint (replacing what this actor holds for ``key``)."""
        for k, c in [kc for kc in self.client_state if kc[0] == key]:
            del self.client_state[(k, c)]
        self.client_state.update({(key, int(c)): st for c, st in states.items()})
        return True

    def ping(self) -> int:
        return self.index

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def memory_mb(self) -> float:
        """Resident memory of this actor process (for scale benchmarks)."""
        import psutil

        return psutil.Process().memory_info().rss / 2**20


ClientActor = ray.remote(ClientActorImpl)
