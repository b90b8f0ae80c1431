"""Client actors: each Ray actor hosts many virtual clients.

An actor receives the training examples and the client partition once (through the object store)
and keeps one model for its lifetime. Each round it gets the global model once, trains each of its
assigned clients in turn and returns a single pre-aggregated update, so the driver's work per round
is a handful of messages however many clients train. The server replaces an actor that dies with a fresh
one built from the same object-store arguments.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import ray

from data_pipeline.batches import Examples
from fedrec.client.batched import BatchedTrainer
from fedrec.client.local import ClientTrainConfig, LocalTrainer
from fedrec.model import ModelConfig
from fedrec.updates import AggregatedUpdate, State, UpdateAccumulator


@dataclass
class ClientStat:
    client: int
    examples: int
    steps: int
    loss: float
    bytes_up: int


DEFAULT_MODEL = "default"


class ClientActorImpl:
    """Hosts one persistent ``LocalTrainer`` per model key: the single global model, or each FEL
    sub-model (sizes differ per tier), built on first use."""

    def __init__(self, examples: Examples, partitions: list[np.ndarray], model_cfg: ModelConfig) -> None:
        self.examples = examples
        self.partitions = partitions
        self.trainers: dict[str, LocalTrainer] = {DEFAULT_MODEL: LocalTrainer(examples.spec, model_cfg, examples)}
        self.batched: dict[str, BatchedTrainer] = {}

    def add_model(self, key: str, model_cfg: ModelConfig) -> bool:
        if key not in self.trainers:
            self.trainers[key] = LocalTrainer(self.examples.spec, model_cfg, self.examples)
        return True

    def train_round(
        self,
        global_state: State,
        clients: list[int],
        cfg: ClientTrainConfig,
        seeds: list[int],
        crash_after: int | None = None,
        model_key: str = DEFAULT_MODEL,
        weight_scale: list[float] | None = None,
    ) -> tuple[AggregatedUpdate, list[ClientStat]]:
        """Train ``clients`` from ``global_state`` and return their pre-aggregated update. Each client
        weighs its example count times ``weight_scale[i]`` (e.g. a staleness discount)."""
        trainer = self.trainers[model_key]
        trainer.load_global(global_state)
        acc = UpdateAccumulator(global_state, set(trainer.emb))
        stats = []
        if cfg.batched:
            if crash_after is not None:
                os._exit(1)  # fault injection: die mid-round, as a preempted worker would
            batched = self.batched.setdefault(model_key, BatchedTrainer(trainer))
            results = batched.train_many(clients, [self.partitions[c] for c in clients], global_state, cfg, seeds)
        else:
            results = (trainer.train(c, self.partitions[c], global_state, cfg, s) for c, s in zip(clients, seeds))
        for i, r in enumerate(results):
            if crash_after is not None and i == crash_after:
                os._exit(1)
            scale = 1.0 if weight_scale is None else float(weight_scale[i])
            acc.add_client(r.dense_delta, r.sparse_delta, float(r.examples) * scale)
            stats.append(ClientStat(r.client, r.examples, r.steps, r.loss, r.bytes_up))
        return acc.result(), stats

    def ping(self) -> bool:
        return True

    def memory_mb(self) -> float:
        """Resident memory of this actor process (for scale benchmarks)."""
        import psutil

        return psutil.Process().memory_info().rss / 2**20


ClientActor = ray.remote(ClientActorImpl)
