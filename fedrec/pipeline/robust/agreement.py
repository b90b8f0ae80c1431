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

``weighting="reference"``: a row's cosine counts in proportion to the length of its reference (the
sum of the other trusted touchers' unit vectors). The row then adds the sum of the client's cosines
to each other trusted toucher (its unit vector dotted with that sum) to the record, over the
reference's length, instead of one cosine over one row. A row where one other client is the
reference is a noisy test (two honest users of one item can disagree), a row where twenty agree is
a sharp one; counting each row once gives both the same say.

``memory=beta``: the reference of a row also holds the unit row updates the test kept on that row in
earlier rounds (trusted and passed), their sum discounted by ``beta`` at each round the row is
touched. A client alone on a row this round is then scored against the row's recent trusted
direction instead of not at all, and a flipper's first round, where it has no record to outweigh,
meets references on more of its rows. Server state, checkpointed.

Throwaway probes (the rounds of one run under the chosen rule recorded, then scored offline, so the
trajectory is held fixed), seeds 0 and 2, 20% label flippers, two passes: rows counted once keep
flippers in 26% / 19% of their rounds and drop honest clients in 15% / 11% of theirs; reference
weighting with ``memory=0.8`` keeps flippers in 14% / 13% and drops honest clients in 12% / 11%;
without attack it drops 10% / 14% of honest uploads, against 13% / 16%.

What it does not see: colluders who send the benign mean shifted (ALIE) agree with the others by
construction, and a fake user who rates real items honestly and boosts one target row agrees on
the rest; FoolsGold's similarity and the coordinated-row guard are there for those.
"""

from __future__ import annotations

import torch

from fedrec.pipeline.robust.stacking import StackedRows, stack_tables, tables_of
from fedrec.updates import ClientUpdate

WEIGHTINGS = ("rows", "reference")


def row_agreement(updates: list[ClientUpdate], tables: list[str], reference: torch.Tensor | None = None,
                  weighting: str = "rows") -> tuple[torch.Tensor, torch.Tensor]:
    """For each update, the sum of its per-row cosines to the reference (the unit-vector sum of the
    other touchers among ``reference [n]`` bool, default all) and the number of rows scored (rows
    of ``tables`` where the client's update and that sum are nonzero): ``(sums [n], counts [n])``,
    float64. ``weighting="reference"``: each row's cosine and count weighted by the reference's
    length."""
    ref = torch.ones(len(updates), dtype=torch.bool) if reference is None else reference
    return agreement_scores(stack_tables(updates, tables) if updates else {}, len(updates), ref, weighting)


def agreement_scores(stacked: dict[str, StackedRows], n: int, reference: torch.Tensor, weighting: str = "rows",
                     memory: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``row_agreement`` on rows already stacked, each row's reference plus ``memory[table][ids]``
    (remembered directions, ``[r, dim]``) where given."""
    sums = torch.zeros(n, dtype=torch.float64)
    counts = torch.zeros(n, dtype=torch.float64)
    trusted = reference.to(torch.float64)
    for name, rows in stacked.items():
        unit, norm = rows.unit_rows()  # [n, r, dim], zero where untouched
        voice = unit * trusted[:, None, None]
        others = voice.sum(0, keepdim=True) - voice
        if memory is not None and name in memory:
            others = others + memory[name].unsqueeze(0)
        other_norm = others.norm(dim=-1)
        scored = rows.touched & (norm > 0) & (other_norm > 1e-12)
        cos = (unit * others).sum(-1) / other_norm.clamp_min(1e-300)
        weight = other_norm if weighting == "reference" else torch.ones_like(other_norm)
        zero = torch.zeros_like(cos)
        sums += torch.where(scored, cos * weight, zero).sum(1)
        counts += torch.where(scored, weight, zero).sum(1)
    return sums, counts


class RowAgreement:
    """Each client's running record of row agreement, and the test on it."""

    def __init__(self, features: list[str] | tuple[str, ...], passes: int = 1, weighting: str = "rows",
                 memory: float | None = None) -> None:
        if not features:
            raise ValueError("row agreement needs at least one feature whose rows it compares")
        if passes < 1:
            raise ValueError(f"passes must be at least 1, not {passes}")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, not {weighting!r}")
        if memory is not None and not 0.0 <= memory < 1.0:
            raise ValueError(f"memory must be in [0, 1), not {memory}")
        self.features = tuple(features)
        self.passes = passes
        self.weighting = weighting
        self.decay = memory
        self.remembered: dict[str, torch.Tensor] = {}  # table -> [rows, dim] float64, the kept directions
        self.score: dict[int, list[float]] = {}  # client id -> [sum of row cosines, rows scored]
        self.seen = 0
        self.dropped = 0

    def kept(self, updates: list[ClientUpdate], reference: torch.Tensor | None = None) -> list[bool]:
        """Record this round's row scores of ``updates`` (finite ones; ``reference``: which of
        them may serve as a reference) and say which pass."""
        if not updates:
            return []
        tables = tables_of(self.features, updates[0].sparse, "agreement")
        trusted = torch.ones(len(updates), dtype=torch.bool) if reference is None else reference.to(torch.bool)
        stacked = stack_tables(updates, tables)  # a lone client has no other toucher: scored only against memory
        memory = None if self.decay is None else {k: self._recalled(k, r) for k, r in stacked.items()}
        ref = trusted
        for p in range(self.passes):
            sums, counts = agreement_scores(stacked, len(updates), ref, self.weighting, memory)
            out = [self._would_pass(u.client, s, c) for u, s, c in zip(updates, sums.tolist(), counts.tolist())]
            narrowed = ref & torch.tensor(out, dtype=torch.bool)
            if p + 1 == self.passes or not narrowed.any():  # no one passed: this pass's scores stand
                break
            ref = narrowed  # score again with only the clients that passed as references
        for u, s, c in zip(updates, sums.tolist(), counts.tolist()):
            old = self.score.setdefault(u.client, [0.0, 0.0])
            old[0] += s
            old[1] += c
        if self.decay is not None:
            self._remember(stacked, trusted & torch.tensor(out, dtype=torch.bool))
        self.seen += len(out)
        self.dropped += out.count(False)
        return out

    def _memory_of(self, table: str, dim: int) -> torch.Tensor:
        """The table's remembered directions ``[rows, dim]`` (empty before any round)."""
        return self.remembered.get(table, torch.zeros(0, dim, dtype=torch.float64))

    def _recalled(self, table: str, rows: StackedRows) -> torch.Tensor:
        """The remembered directions of ``rows.ids`` (zero for a row never kept), ``[r, dim]``."""
        mem = self._memory_of(table, rows.values.shape[-1])
        out = torch.zeros(len(rows.ids), mem.shape[1], dtype=torch.float64)
        inside = rows.ids < len(mem)
        out[inside] = mem[rows.ids[inside]]
        return out

    def _remember(self, stacked: dict[str, StackedRows], kept: torch.Tensor) -> None:
        """Discount each touched row's memory by ``decay`` and add the unit rows of the ``kept``."""
        for name, rows in stacked.items():
            unit, _ = rows.unit_rows()
            added = (unit * kept.to(torch.float64)[:, None, None]).sum(0)  # [r, dim]
            mem = self._memory_of(name, unit.shape[-1])
            size = int(rows.ids.max()) + 1 if len(rows.ids) else 0
            if len(mem) < size:  # grow to the largest row id seen (at least doubling)
                grown = torch.zeros(max(size, 2 * len(mem)), mem.shape[1], dtype=torch.float64)
                grown[:len(mem)] = mem
                mem = grown
            mem[rows.ids] = self.decay * mem[rows.ids] + added
            self.remembered[name] = mem

    def _would_pass(self, client: int, s: float, c: float) -> bool:
        """Whether ``client``'s record with this round's ``s`` (sum of row cosines) over ``c`` rows
        added is not below 0 (a client with no scored row passes)."""
        old_s, old_c = self.score.get(client, (0.0, 0.0))
        return old_c + c == 0 or (old_s + s) / (old_c + c) >= 0.0

    def state_dict(self) -> dict:
        return {"score": {c: list(v) for c, v in self.score.items()}, "counts": [self.seen, self.dropped],
                "remembered": {k: v.clone() for k, v in self.remembered.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.score = {int(c): [float(v[0]), float(v[1])] for c, v in (state.get("score") or {}).items()}
        self.seen, self.dropped = state.get("counts", [0, 0])
        self.remembered = {k: v.clone() for k, v in (state.get("remembered") or {}).items()}

    def report(self) -> dict:
        """Share of the uploads dropped over the run."""
        return {"agreement": {"dropped_share": self.dropped / self.seen if self.seen else 0.0}}
