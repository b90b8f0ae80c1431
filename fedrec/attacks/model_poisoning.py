"""Attacks an attacker runs on its own update before upload (client steps). Benign clients pass
through untouched; an attacker's weight (its claimed example count) stays honest.

- ``SignFlip``: upload ``-scale * delta`` (the honest update reversed and boosted).
- ``Scaling``: upload ``scale * delta`` (also the boost that follows label flipping).
- ``GaussianUpdate``: upload N(0, scale^2) noise in place of every value it would send (its dense
  deltas and its touched rows), seeded by the client's round seed.
- ``BoostRows``: multiply the rows ``ids`` of one table by ``scale`` (item promotion: the target
  item's row, after training on fake positive rows for it; PipAttack and FedRecAttack likewise
  upload an amplified poisoned gradient for the target item).
"""

from __future__ import annotations

import torch

from fedrec.pipeline.base import ClientContext, ClientStep
from fedrec.updates import ClientUpdate


class AttackerStep(ClientStep):
    """A client step that changes only the attackers' updates."""

    def __init__(self, attackers, scale: float) -> None:
        self.attackers = frozenset(int(a) for a in attackers)
        self.scale = float(scale)

    def apply(self, update: ClientUpdate, ctx: ClientContext) -> ClientUpdate:
        return self.poison(update, ctx) if ctx.client in self.attackers else update

    def poison(self, update: ClientUpdate, ctx: ClientContext) -> ClientUpdate:
        raise NotImplementedError


class SignFlip(AttackerStep):
    name = "sign_flip"

    def poison(self, update, ctx):
        return update.scaled(-self.scale)


class Scaling(AttackerStep):
    name = "scaling"

    def poison(self, update, ctx):
        return update.scaled(self.scale)


class GaussianUpdate(AttackerStep):
    name = "gaussian"

    def poison(self, update, ctx):
        g = torch.Generator().manual_seed(ctx.seed)

        def noise(t: torch.Tensor) -> torch.Tensor:
            return torch.randn(t.shape, generator=g, dtype=t.dtype) * self.scale

        return ClientUpdate(update.client, update.weight, {n: noise(d) for n, d in update.dense.items()},
                            {n: (ids, noise(rows)) for n, (ids, rows) in update.sparse.items()}, update.whole_tables)


class BoostRows(AttackerStep):
    name = "boost_rows"

    def __init__(self, attackers, scale: float, table: str, ids) -> None:
        super().__init__(attackers, scale)
        self.table = table
        self.ids = torch.as_tensor(list(ids), dtype=torch.int64)

    def poison(self, update, ctx):
        ids, rows = update.sparse[self.table]
        factor = torch.where(torch.isin(ids, self.ids), self.scale, 1.0).to(rows.dtype).unsqueeze(1)
        return ClientUpdate(update.client, update.weight, update.dense, {**update.sparse, self.table: (ids, rows * factor)},
                            update.whole_tables)
