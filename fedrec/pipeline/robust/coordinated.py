"""Coordinated-row guard against item promotion: an embedding row whose touchers keep pushing it
the same way is held still.

Why. Fake users that promote an item (``fedrec.attacks`` item promotion, PipAttack/FedRecAttack)
each rate real items honestly and the target item highly, so every per-client test sees a client
much like an honest one: FoolsGold's similarity is diluted by the real rows (8.6% of their uploads
get weight 0), the row-agreement test sees rows that agree, and on the target's row the attackers
are the majority, so per-row statistics (median, trimmed mean) side with them. What they cannot
avoid is acting in concert on one row: round after round the clients who touch the target push
its embedding in nearly one direction (seed 0: a mean pairwise cosine of 0.5-0.65 among ~9
touchers a round), while honest users who rate the same item move it along their own tastes and
disagree on whether they liked it (a mean pairwise cosine of 0.08-0.15 on rows touched as often).
This is FoolsGold's premise, that sybils with one goal look alike, applied to each row instead of
each client. It is a rule of our own: no library ships it.

A FoolsGold option (``FoolsGold(promotion_guard=...)``). Per round, for each row of the watched
tables touched by at least ``min_touchers`` of the clients FoolsGold trusts this round (weight >
0) with nonzero updates, the mean pairwise cosine of those updates, ``(|sum of unit vectors|^2 -
k) / (k (k - 1))`` over its ``k`` touchers, joins the row's running mean over the rounds it was
scored in (server state, checkpointed). FoolsGold aggregates as ever; a row whose running mean is
above ``threshold`` is then taken out of the aggregate (the row does not move this round). Both
halves matter. Only the trusted count: colluders who upload one vector over every row (ALIE) are
perfectly coordinated everywhere, and counting them held most of the item table still (seed 0:
test AUC 0.59 under ALIE). And rows are held after FoolsGold's weighting, not stripped from the
uploads before it: the rows that give colluders away must stay in what FoolsGold compares
(stripping them first let IPM's colluders through and diverged the model). The
running mean, not one round's value, decides: a popular honest row looks coordinated by chance in
some rounds (a single round's value above 0.5 for 15% of the rows scored), its mean over rounds
much less often (1.7%); the promoted row stays above it.

What it costs: a held honest row does not learn that round; the run's report gives the share of
scored rows held. What it does not see: a promotion spread over fewer than ``min_touchers``
touchers a round, or attackers who add enough disagreement to their target row to look honest
(at the price of pushing it less).
"""

from __future__ import annotations

import torch

from fedrec.pipeline.robust.stacking import StackedRows, stack_tables, tables_of
from fedrec.updates import AggregatedUpdate, ClientUpdate, SparseRows


def row_coordination(rows: StackedRows, min_touchers: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of ``rows``: the mean pairwise cosine of its touchers' nonzero updates and whether it
    was scored (at least ``min_touchers`` of them)."""
    unit, norm = rows.unit_rows()
    k = (rows.touched & (norm > 0)).sum(0).to(torch.float64)
    total = unit.sum(0)
    scored = k >= max(min_touchers, 2)
    mean_cos = (total.pow(2).sum(-1) - k) / (k * (k - 1)).clamp_min(1.0)
    return torch.where(scored, mean_cos, torch.zeros_like(mean_cos)), scored


class CoordinatedRows:
    """Each watched row's running record of coordination, and the rows it holds still."""

    def __init__(self, features: list[str] | tuple[str, ...], threshold: float = 0.5, min_touchers: int = 3) -> None:
        if not features:
            raise ValueError("the coordinated-row guard needs at least one feature whose rows it watches")
        self.features = tuple(features)
        self.threshold = threshold
        self.min_touchers = min_touchers
        self.record: dict[str, dict[int, list[float]]] = {}  # table -> row id -> [sum of mean cosines, rounds scored]
        self._scored = 0
        self._held = 0

    def held_rows(self, updates: list[ClientUpdate]) -> dict[str, torch.Tensor]:
        """Record this round's coordination among ``updates`` (the trusted, finite uploads) per row
        and give, per watched table, the ids of their rows to hold still."""
        if not updates:
            return {}
        tables = tables_of(self.features, updates[0].sparse, "promotion guard")
        held = {}
        for name, r in stack_tables(updates, tables).items():
            mean_cos, scored = row_coordination(r, self.min_touchers)
            record = self.record.setdefault(name, {})
            for i, c in zip(r.ids[scored].tolist(), mean_cos[scored].tolist()):
                s = record.setdefault(int(i), [0.0, 0.0])
                s[0] += c
                s[1] += 1.0
            hold = torch.tensor([bool((s := record.get(i)) and s[0] / s[1] > self.threshold) for i in r.ids.tolist()],
                                dtype=torch.bool)
            self._scored += int(scored.sum())
            self._held += int((hold & scored).sum())
            held[name] = r.ids[hold]
        return held

    @staticmethod
    def hold(aggregate: AggregatedUpdate, held: dict[str, torch.Tensor]) -> AggregatedUpdate:
        """``aggregate`` without the ``held`` rows (they do not move this round)."""
        for name, ids in held.items():
            rows = aggregate.sparse.get(name)
            if rows is not None and len(ids):
                keep = ~torch.isin(rows.ids, ids)
                aggregate.sparse[name] = SparseRows(rows.ids[keep], rows.delta_sum[keep], rows.weight[keep])
        return aggregate

    def state_dict(self) -> dict:
        return {"record": {t: {i: list(v) for i, v in rows.items()} for t, rows in self.record.items()},
                "counts": [self._scored, self._held]}

    def load_state_dict(self, state: dict) -> None:
        self.record = {t: {int(i): [float(v[0]), float(v[1])] for i, v in rows.items()}
                       for t, rows in (state.get("record") or {}).items()}
        self._scored, self._held = state.get("counts", [0, 0])

    def report(self) -> dict:
        """Share of the scored row updates held still over the run, and the rows held at the end."""
        return {"promotion_guard": {"held_share": self._held / self._scored if self._scored else 0.0,
                                    "rows_held_at_end": sum(1 for rows in self.record.values()
                                                          for s in rows.values() if s[0] / s[1] > self.threshold)}}
