"""Row-agreement gate: drop the clients whose embedding-row updates, over all their rounds so far,
point away from what the other clients who touched the same rows sent.

Why a gate of our own. Sign-flipping and label-flipping attackers do not collude: each sends its own
(negated, or trained on flipped labels) update, so FoolsGold's similarity sees nothing (they look no
more alike than honest clients), and in a recommender the rules that look for a majority fail on
the dense tensors, where one direction (the output bias) dominates and honest users with opposite
tastes point opposite ways. What an anti-trained update cannot hide is disagreement with the
others *on the same rows*: users who rated an item tend to move its embedding the same way (a liked
item towards the shared taste directions), and a flipped update moves it the other way. FLTrust
(Cao et al., NDSS 2021) weights clients by the cosine of their whole update to a reference, but a
whole sparse upload is mostly rows nobody else touched, and against the coordinate-wise median as
the reference this zeroes 42% of honest clients here; comparing row by row, with the other touchers
of that row as the reference, is the sparse form of the same idea. No library offers it.

Per round, for each compared table and each row touched by at least two clients, every toucher's
row update is made a unit vector; a client's score on that row is the cosine between its unit
vector and the sum of the other touchers' (leave one out, so a client is not its own reference;
unit vectors, so no single boosted upload sets the reference). A client keeps the sum ``S`` and the
count ``N`` of its row scores over every round it took part in (server state, checkpointed), and is
kept this round when ``S / N >= 0``: over its whole record, its rows agree with the others' at
least as much as they disagree. Every scored row counts once, so a client seen on many rows is
judged on all of them and one unlucky round does not drop a client with a long record. A client
with no scored row yet is kept. The kept uploads go, unchanged, to the inner rule (FoolsGold against colluders, or any
other); the gate drops, it does not reweight.

What it does not see: colluders who send the benign mean shifted (ALIE, IPM) agree with the others
by construction, and a fake user who rates real items honestly and boosts one target row agrees on
the rest; those are the inner rule's to catch. An update with a non-finite value is left to the
inner rule and takes no part in the references.
"""

from __future__ import annotations

import torch

from fedrec.pipeline.base import Aggregator, ServerContext
from fedrec.pipeline.robust.stacking import is_finite, stack, tables_of
from fedrec.updates import AggregatedUpdate, ClientUpdate


def row_agreement(updates: list[ClientUpdate], tables: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """For each update, the sum of its per-row cosines to the other touchers' unit-vector sum and
    the number of rows scored (rows of ``tables`` touched by at least two clients, with a nonzero
    update from this client and from the others together): ``(sums [n], counts [n])``, float64."""
    n = len(updates)
    sums = torch.zeros(n, dtype=torch.float64)
    counts = torch.zeros(n, dtype=torch.float64)
    if n < 2:
        return sums, counts
    stacked = stack([ClientUpdate(u.client, u.weight, {}, {k: u.sparse[k] for k in tables}) for u in updates])
    for rows in stacked.rows.values():
        x = rows.values.to(torch.float64)  # [n, r, dim], zero where untouched
        norm = x.norm(dim=-1)
        unit = x / norm.clamp_min(1e-300).unsqueeze(-1)
        others = unit.sum(0, keepdim=True) - unit
        other_norm = others.norm(dim=-1)
        scored = rows.touched & (norm > 0) & (other_norm > 1e-12) & (rows.touched.sum(0) >= 2)
        cos = (unit * others).sum(-1) / other_norm.clamp_min(1e-300)
        sums += torch.where(scored, cos, torch.zeros_like(cos)).sum(1)
        counts += scored.sum(1).to(torch.float64)
    return sums, counts


class AgreementGate(Aggregator):
    name = "agreement"

    def __init__(self, inner: Aggregator, features: list[str] | tuple[str, ...]) -> None:
        if not features:
            raise ValueError("the agreement gate needs at least one feature whose rows it compares")
        self.inner = inner
        self.features = tuple(features)
        self.score: dict[int, list[float]] = {}  # client id -> [sum of row cosines, rows scored]
        self._seen = 0
        self._dropped = 0

    def kept(self, updates: list[ClientUpdate]) -> list[bool]:
        """Record this round's row scores and say which updates pass the gate."""
        finite = [u for u in updates if is_finite(u)]
        if finite:
            sums, counts = row_agreement(finite, tables_of(self.features, finite[0].sparse, "agreement"))
            for u, s, c in zip(finite, sums.tolist(), counts.tolist()):
                old = self.score.setdefault(u.client, [0.0, 0.0])
                old[0] += s
                old[1] += c
        out = []
        for u in updates:
            s, c = self.score.get(u.client, (0.0, 0.0))
            out.append(c == 0 or s / c >= 0.0)
        return out

    def aggregate(self, updates: list[ClientUpdate], ctx: ServerContext) -> AggregatedUpdate:
        keep = self.kept(updates)
        self._seen += len(updates)
        self._dropped += keep.count(False)
        passed = [u for u, k in zip(updates, keep) if k]
        if not passed:
            return AggregatedUpdate()  # nobody trusted this round: the model does not move
        out = self.inner.aggregate(passed, ctx)
        out.clients = len(updates)
        return out

    def state_dict(self) -> dict:
        return {"score": {c: list(v) for c, v in self.score.items()}, "counts": [self._seen, self._dropped],
                "inner": self.inner.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.score = {int(c): [float(v[0]), float(v[1])] for c, v in (state.get("score") or {}).items()}
        self._seen, self._dropped = state.get("counts", [0, 0])
        self.inner.load_state_dict(state.get("inner", {}))

    def report(self) -> dict:
        """Share of the uploads the gate dropped over the run, beside the inner rule's report."""
        return {**self.inner.report(),
                "agreement": {"dropped_share": self._dropped / self._seen if self._seen else 0.0}}
