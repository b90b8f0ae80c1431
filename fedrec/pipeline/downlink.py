"""Compressed downloads (``compression.downlink: same``): a client downloads the change of the
model since the copy it holds, encoded like uploads, and trains from its updated copy.

The server remembers, per client, the copy that client holds: its dense tensors and the rows it
trains on (downloads are sparse: ``client.sparse_downloads``). Every client starts out holding
the initial model, which is a deterministic function of the run's seed (shipped with the app, so
to speak); each download sends encode(global - held) and both ends add the decoded change to the
held copy. What the compression dropped is still in global - held at the next download, so the
downlink needs no separate error-feedback memory (the reference copy plays that part). Clients
train from their own copy (``ClientPool.submit_from``), so a lossy downlink costs accuracy
honestly; the simulated clock prices each download at its encoded size (``ClientFacts.down``,
checked against the bytes in ``tests/unit/test_compression.py``).
"""

from __future__ import annotations

import numpy as np
import torch

from fedrec.client.data import ClientData
from fedrec.pipeline.compress import plan_for
from fedrec.pipeline.wire import WireSchema, encode_update
from fedrec.threads import single_threaded
from fedrec.updates import ClientStart, ClientUpdate, State


class DeltaDownloads:
    def __init__(self, cfg, state: State, tables: dict[str, str], data) -> None:
        self.plan = plan_for(cfg.compression)
        self.schema = WireSchema.of(state, tables)
        self.tables = dict(tables)  # state name -> feature
        self.seed = cfg.seed
        self.initial = {n: t.detach().clone() for n, t in state.items()}
        self.clients = ClientData(data.train, data.partitions)
        self.held: dict[int, ClientStart] = {}
        self.memory: dict[int, dict] = {}  # the server's codec state per client (PowerSGD's Q)
        self.last_nbytes = 0

    def ids(self, client: int) -> dict[str, torch.Tensor]:
        touched = self.clients.client(client)[1]
        return {n: torch.from_numpy(touched[f]) for n, f in self.tables.items()}

    def _initial_copy(self, client: int) -> ClientStart:
        ids = self.ids(client)
        dense = {n: t.clone() for n, t in self.initial.items() if n not in self.tables}
        return ClientStart(dense, {n: self.initial[n][ids[n]].clone() for n in self.tables})

    @single_threaded
    def download(self, client: int, state: State) -> ClientStart:
        """Encode the change from ``client``'s copy to ``state``, apply it to the copy, and return
        the copy the client now trains from (``last_nbytes``: the bytes it downloaded)."""
        held = self.held.get(client) or self._initial_copy(client)
        ids = self.ids(client)
        change = ClientUpdate(client, 0.0, {n: state[n] - t for n, t in held.dense.items()},
                              {n: (ids[n], state[n][ids[n]] - held.rows[n]) for n in self.tables})
        seed = int(np.random.default_rng([self.seed, client, 0xD0]).integers(2**31))
        wire, decoded = encode_update(change, self.schema, self.plan, self.memory.setdefault(client, {}), seed)
        copy = ClientStart({n: t + decoded.dense[n] for n, t in held.dense.items()},
                           {n: r + decoded.sparse[n][1] for n, r in held.rows.items()})
        self.held[client] = copy
        self.last_nbytes = len(wire)
        return copy

    def state_dict(self) -> dict:
        return {"held": self.held, "memory": self.memory}

    def load_state_dict(self, blob: dict) -> None:
        self.held, self.memory = dict(blob["held"]), dict(blob["memory"])
