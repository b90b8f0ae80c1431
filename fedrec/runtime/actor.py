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

import ray
import torch

from fedrec.client.data import ClientData
from fedrec.client.layout import ModelLayout
from fedrec.client.local import ClientTrainConfig, LocalTrainer
from fedrec.model import ModelConfig
from fedrec.pipeline import Arrivals, ClientContext, UpdatePipeline
from fedrec.updates import ClientStart, State, StateChange


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


@dataclass
class _Slot:
    model_cfg: ModelConfig
    state: State
    version: int
    layout: ModelLayout
    trainers: dict = field(default_factory=dict)


class ClientActorImpl:
    def __init__(self, index: int) -> None:
        torch.set_num_threads(1)  # one CPU per actor; intra-op threads would oversubscribe
        self.index = index
        self.data: ClientData | None = None
        self.slots: dict[str, _Slot] = {}
        self.client_state: dict[tuple[str, int], dict] = {}
        self.own_start_trainers: dict[str, object] = {}  # train_from's trainers, per model key

    def set_data(self, examples, partitions) -> bool:
        """New training data: models and client state built on the old data are dropped."""
        self.data = ClientData(examples, partitions)
        self.slots.clear()
        self.client_state.clear()
        self.own_start_trainers.clear()
        return True

    def _sync(self, key: str, sync: ModelSync | None, payload) -> _Slot:
        if sync is not None:
            if sync.kind == "full":
                state = {n: t.clone() for n, t in payload.items()}
                self.slots[key] = _Slot(sync.model_cfg, state, sync.version, ModelLayout.of(state, self.data.spec))
            else:
                slot = self.slots[key]
                if slot.version != sync.version - 1:
                    raise RuntimeError(f"actor {self.index}: model {key!r} at version {slot.version}, change is for {sync.version}")
                payload.apply_to(slot.state)
                slot.version = sync.version
        return self.slots[key]

    def train(
        self, key: str, sync: ModelSync | None, payload: State | StateChange | None, clients: list[int],
        cfg: ClientTrainConfig, seeds: list[int], pipeline: UpdatePipeline, rnd: int,
    ) -> tuple[Arrivals, list[ClientStat]]:
        """Train ``clients`` of model ``key`` from its current global version; client steps run on
        each update before it is packed for the driver."""
        slot = self._sync(key, sync, payload)
        if cfg.batched:
            from fedrec.client.batched import BatchedTrainer

            trainer = slot.trainers.get("batched") or slot.trainers.setdefault("batched", BatchedTrainer(self.data, slot.layout))
            results = trainer.train_many(clients, slot.state, cfg, seeds)
        else:
            trainer = slot.trainers.get("local") or slot.trainers.setdefault("local", LocalTrainer(self.data, slot.model_cfg))
            trainer.load_global(slot.state)
            results = [trainer.train(c, slot.state, cfg, s) for c, s in zip(clients, seeds)]
        return self._send(key, results, seeds, pipeline, rnd)

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

    def memory_mb(self) -> float:
        """Resident memory of this actor process (for scale benchmarks)."""
        import psutil

        return psutil.Process().memory_info().rss / 2**20


ClientActor = ray.remote(ClientActorImpl)
