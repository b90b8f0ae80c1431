"""Private embedding rows: the part of the model that never leaves a device.

A table listed in ``model.private`` (typically ``user``) is trained by each client on its own rows
and kept on the client between rounds; its rows are never uploaded, aggregated or sent to the
server. In simulation the actor that owns a client (client id modulo the number of actors) keeps
those rows in a ``PrivateRows`` store: one contiguous array per private table holding exactly the
rows its clients own, looked up by row id. A client that has never trained reads the table's initial
row (the global model's initialisation, which the server never changes for a private table).

The store is in memory while it is small and a memory-mapped file per actor and table when it is
larger than ``max_bytes`` (so a million clients' rows need not all be resident). It exports and
imports plain arrays for checkpoints.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch


class PrivateRows:
    def __init__(self, init: dict[str, tuple[np.ndarray, np.ndarray]], max_bytes: int = 1 << 30,
                 spill_dir: str | None = None, tag: str = "actor") -> None:
        """``init``: per private table, (sorted owned row ids, their initial rows [n, dim])."""
        self.ids: dict[str, np.ndarray] = {}
        self.rows: dict[str, np.ndarray] = {}
        self.trained: dict[str, np.ndarray] = {}
        total = sum(r.nbytes for _, r in init.values())
        self.mapped = total > max_bytes
        self._files: list[Path] = []
        for name, (ids, rows) in init.items():
            self.ids[name] = np.asarray(ids, dtype=np.int64)
            self.trained[name] = np.zeros(len(ids), dtype=bool)
            if self.mapped:
                folder = Path(spill_dir or tempfile.gettempdir())
                folder.mkdir(parents=True, exist_ok=True)
                fd, path = tempfile.mkstemp(prefix=f"fedrec-private-{tag}-", suffix=".f32", dir=folder)
                os.close(fd)
                mm = np.memmap(path, dtype=np.float32, mode="w+", shape=rows.shape)
                mm[:] = rows
                self.rows[name] = mm
                self._files.append(Path(path))
            else:
                self.rows[name] = np.array(rows, dtype=np.float32)

    def _pos(self, name: str, ids: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self.ids[name], ids)
        if len(ids) and (pos.max() >= len(self.ids[name]) or not np.array_equal(self.ids[name][pos], ids)):
            raise KeyError(f"private table {name!r}: rows {ids[:5].tolist()}... are not owned here")
        return pos

    def get(self, name: str, ids: np.ndarray) -> torch.Tensor:
        """The stored rows ``ids`` (a copy)."""
        return torch.from_numpy(np.array(self.rows[name][self._pos(name, np.asarray(ids))], dtype=np.float32))

    def put(self, name: str, ids: np.ndarray, rows: torch.Tensor) -> None:
        pos = self._pos(name, np.asarray(ids))
        self.rows[name][pos] = rows.detach().numpy()
        self.trained[name][pos] = True

    def is_trained(self, name: str, ids: np.ndarray) -> np.ndarray:
        return self.trained[name][self._pos(name, np.asarray(ids))]

    def table(self, name: str, base: torch.Tensor) -> torch.Tensor:
        """``base`` (the global table) with every owned row replaced by its stored value."""
        out = base.clone()
        out[torch.from_numpy(self.ids[name])] = torch.from_numpy(np.asarray(self.rows[name]))
        return out

    def copy(self) -> PrivateRows:
        """An in-memory copy (evaluation refits its rows and throws it away)."""
        out = PrivateRows({n: (self.ids[n], np.asarray(self.rows[n])) for n in self.ids}, max_bytes=1 << 62)
        for n in self.ids:
            out.trained[n][:] = self.trained[n]
        return out

    @property
    def nbytes(self) -> int:
        return sum(r.nbytes for r in self.rows.values())

    def state_dict(self) -> dict:
        return {n: {"ids": self.ids[n], "rows": np.array(self.rows[n]), "trained": self.trained[n].copy()} for n in self.ids}

    def load_state_dict(self, blob: dict) -> None:
        for name, part in blob.items():
            if not np.array_equal(part["ids"], self.ids[name]):
                raise ValueError(f"private table {name!r}: the checkpoint's rows are not this actor's")
            self.rows[name][:] = part["rows"]
            self.trained[name][:] = part["trained"]

    def close(self) -> None:
        for name in list(self.rows):
            if isinstance(self.rows[name], np.memmap):
                del self.rows[name]
        for f in self._files:
            f.unlink(missing_ok=True)
        self._files = []

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def owned_rows(examples, partitions, feature: str, owned: np.ndarray) -> np.ndarray:
    """Sorted ids of ``feature`` touched by the clients in ``owned`` (vectorised over rows)."""
    rows = np.concatenate([partitions[c] for c in owned]) if len(owned) else np.zeros(0, dtype=np.int64)
    if not len(rows):
        return np.zeros(0, dtype=np.int64)
    from data_pipeline.batches import gather_jagged

    values, _ = gather_jagged(examples.values[feature], examples.offsets[feature], np.sort(rows))
    return np.unique(values)


def check_single_owner(examples, partitions: list[np.ndarray], feature: str) -> None:
    """A private table needs one owner per row: no row may be touched by two clients."""
    from data_pipeline.errors import ConfigError

    owner = np.full(len(examples), -1, dtype=np.int64)
    for c, rows in enumerate(partitions):
        owner[rows] = c
    per_row = np.repeat(owner, np.diff(examples.offsets[feature]))
    keep = per_row >= 0
    pairs = np.unique(np.stack([examples.values[feature][keep], per_row[keep]], axis=1), axis=0)
    shared = np.flatnonzero(np.bincount(pairs[:, 0]) > 1)
    if len(shared):
        raise ConfigError("model.private", f"table {feature!r}: rows {shared[:5].tolist()} are touched by several clients; "
                          "a private table needs one owner per row (e.g. the user table with partition natural)")
