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


class ClientActorImpl:
    def __init__(self, examples: Examples, partitions: list[np.ndarray], model_cfg: ModelConfig) -> None:
        self.trainer = LocalTrainer(examples.spec, model_cfg, examples)
        self.partitions = partitions

    def train_round(
        self, global_state: State, clients: list[int], cfg: ClientTrainConfig, seeds: list[int], crash_after: int | None = None
    ) -> tuple[AggregatedUpdate, list[ClientStat]]:
        self.trainer.load_global(global_state)
        acc = UpdateAccumulator(global_state, set(self.trainer.emb))
        stats = []
        for i, (client, seed) in enumerate(zip(clients, seeds)):
            if crash_after is not None and i == crash_after:
                os._exit(1)  # fault injection: die mid-round, as a preempted worker would
            r = self.trainer.train(client, self.partitions[client], global_state, cfg, seed)
            acc.add_client(r.dense_delta, r.sparse_delta, float(r.examples))
            stats.append(ClientStat(client, r.examples, r.steps, r.loss, r.bytes_up))
        return acc.result(), stats

    def ping(self) -> bool:
        return True


ClientActor = ray.remote(ClientActorImpl)
