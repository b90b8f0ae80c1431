"""Row agreement: drop the clients whose embedding-row updates, over all their rounds so far, point
away from what the trusted clients who touched the same rows sent (a FoolsGold option,
``FoolsGold(agreement=...)``).

Why a test of our own. Sign-flipping and label-flipping attackers do not collude: each sends its own
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

Per round, for each compared table and each row, every toucher's row update is made a unit
vector; a client's score on that row is the cosine between its unit vector and the sum of the
other *trusted* touchers' (leave one out, so a client is not its own reference; unit vectors, so no
single boosted upload sets the reference). Trusted means given weight by FoolsGold this round:
colluders who upload one vector (IPM, ALIE) must not be the reference, or on the many rows where
one honest client is the only other toucher they outvote it (IPM sends minus the benign mean, which
on such a row is minus that client's own update), and the gate drops the honest clients: 79% of
the uploads on seed 0 with every toucher as a reference. A row without another trusted toucher is
not scored.

A client keeps the sum ``S`` and the count ``N`` of its row scores over every round it took part in
(server state, checkpointed), and is dropped this round when ``S / N < 0``: over its whole record,
its rows disagree with the trusted others' more than they agree. Every scored row counts once, so
a client seen on many rows is judged on all of them and one unlucky round does not drop a client
with a long record. A client with no scored row yet is kept.

``passes``: label flippers are not colluders, so FoolsGold trusts them and they serve as references
too; on a popular row a fifth of the reference then points the flipped way, which pulls honest
clients' scores down and flippers' up. With ``passes=2`` the round is scored again with only the
clients that passed the first time as references (and so on; if none passed, the last scores
stand), and the record takes the last pass's scores. Seed 2, 20% label flippers (a probe with
``scripts/bench_robust.py``'s machinery): flippers kept in 27% of their rounds with one pass, 18%
with two, and honest clients dropped in 17% and 12% of theirs.

What it does not see: colluders who send the benign mean shifted (ALIE) agree with the others by
construction, and a fake user who rates real items honestly and boosts one target row agrees on
the rest; FoolsGold's similarity and the coordinated-row guard are there for those.
"""

from __future__ import annotations

import torch

from fedrec.pipeline.robust.stacking import stack_tables, tables_of
from fedrec.updates import ClientUpdate


def row_agreement(updates: list[ClientUpdate], tables: list[str],
                  reference: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """For each update, the sum of its per-row cosines to the reference (the unit-vector sum of the
    other touchers among ``reference [n]`` bool, default all) and the number of rows scored (rows
    of ``tables`` where the client's update and that sum are nonzero): ``(sums [n], counts [n])``,
    float64."""
    n = len(updates)
    sums = torch.zeros(n, dtype=torch.float64)
    counts = torch.zeros(n, dtype=torch.float64)
    if n < 2:
        return sums, counts
    trusted = torch.ones(n, dtype=torch.float64) if reference is None else reference.to(torch.float64)
    for rows in stack_tables(updates, tables).values():
        unit, norm = rows.unit_rows()  # [n, r, dim], zero where untouched
        voice = unit * trusted[:, None, None]
        others = voice.sum(0, keepdim=True) - voice
        other_norm = others.norm(dim=-1)
        scored = rows.touched & (norm > 0) & (other_norm > 1e-12)
        cos = (unit * others).sum(-1) / other_norm.clamp_min(1e-300)
        sums += torch.where(scored, cos, torch.zeros_like(cos)).sum(1)
        counts += scored.sum(1).to(torch.float64)
    return sums, counts


class RowAgreement:
    """Each client's running record of row agreement, and the test on it."""

    def __init__(self, features: list[str] | tuple[str, ...], passes: int = 1) -> None:
        if not features:
            raise ValueError("row agreement needs at least one feature whose rows it compares")
        if passes < 1:
            raise ValueError(f"passes must be at least 1, not {passes}")
        self.features = tuple(features)
        self.passes = passes
        self.score: dict[int, list[float]] = {}  # client id -> [sum of row cosines, rows scored]
        self.seen = 0
        self.dropped = 0

    def kept(self, updates: list[ClientUpdate], reference: torch.Tensor | None = None) -> list[bool]:
        """Record this round's row scores of ``updates`` (finite ones; ``reference``: which of
        them may serve as a reference) and say which pass."""
        if not updates:
            return []
        tables = tables_of(self.features, updates[0].sparse, "agreement")
        ref = torch.ones(len(updates), dtype=torch.bool) if reference is None else reference.to(torch.bool)
        for p in range(self.passes):
            sums, counts = row_agreement(updates, tables, ref)
            out = [self._would_pass(u.client, s, c) for u, s, c in zip(updates, sums.tolist(), counts.tolist())]
            narrowed = ref & torch.tensor(out, dtype=torch.bool)
            if p + 1 == self.passes or not narrowed.any():  # no one passed: this pass's scores stand
                break
            ref = narrowed  # score again with only the clients that passed as references
        for u, s, c in zip(updates, sums.tolist(), counts.tolist()):
            old = self.score.setdefault(u.client, [0.0, 0.0])
            old[0] += s
            old[1] += c
        self.seen += len(out)
        self.dropped += out.count(False)
        return out

    def _would_pass(self, client: int, s: float, c: float) -> bool:
        """Whether ``client``'s record with this round's ``s`` (sum of row cosines) over ``c`` rows
        added is not below 0 (a client with no scored row passes)."""
        old_s, old_c = self.score.get(client, (0.0, 0.0))
        return old_c + c == 0 or (old_s + s) / (old_c + c) >= 0.0

    def state_dict(self) -> dict:
        return {"score": {c: list(v) for c, v in self.score.items()}, "counts": [self.seen, self.dropped]}

    def load_state_dict(self, state: dict) -> None:
        self.score = {int(c): [float(v[0]), float(v[1])] for c, v in (state.get("score") or {}).items()}
        self.seen, self.dropped = state.get("counts", [0, 0])

    def report(self) -> dict:
        """Share of the uploads dropped over the run."""
        return {"agreement": {"dropped_share": self.dropped / self.seen if self.seen else 0.0}}
