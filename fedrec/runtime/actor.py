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
from fedrec.updates import State, StateChange


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

    def set_data(self, examples, partitions) -> bool:
        """New training data: models and client state built on the old data are dropped."""
        self.data = ClientData(examples, partitions)
        self.slots.clear()
        self.client_state.clear()
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
        updates, stats = [], []
        for r, seed in zip(results, seeds):
            client = r.update.client
            ctx = ClientContext(client, rnd, seed, self.client_state.setdefault((key, client), {}))
            update = pipeline.client_side(r.update, ctx)
            updates.append(update)
            stats.append(ClientStat(client, r.examples, r.steps, r.loss, update.nbytes()))
        return pipeline.pack(updates), stats

    def ping(self) -> int:
        return self.index

    def memory_mb(self) -> float:
        """Resident memory of this actor process (for scale benchmarks)."""
        import psutil

        return psutil.Process().memory_info().rss / 2**20


ClientActor = ray.remote(ClientActorImpl)
