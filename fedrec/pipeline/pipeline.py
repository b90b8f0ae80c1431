"""An ordered update pipeline, and the two places it runs: in the actor for each client
(``client_side``) and on the driver for what arrives (``server_side``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fedrec.pipeline.base import Aggregator, ClientContext, ClientStep, ServerContext, ServerStep
from fedrec.pipeline.mean import WeightedMean
from fedrec.updates import AggregatedUpdate, ClientUpdate


@dataclass
class Arrivals:
    """What came back for one group of clients: either one pre-aggregated sum (fast path) or the
    individual updates (when the pipeline needs them)."""

    aggregate: AggregatedUpdate | None = None
    updates: list[ClientUpdate] | None = None

    def scaled(self, w: float) -> Arrivals:
        if self.updates is not None:
            return Arrivals(updates=[u.scaled(w) for u in self.updates])
        return Arrivals(aggregate=self.aggregate.scaled(w) if self.aggregate is not None else None)


@dataclass
class UpdatePipeline:
    client_steps: list[ClientStep] = field(default_factory=list)
    server_steps: list[ServerStep] = field(default_factory=list)
    aggregator: Aggregator = field(default_factory=WeightedMean)
    force_per_client: bool = False  # tests: take the per-client path even when nothing needs it

    @property
    def per_client(self) -> bool:
        """Whether actors must return individual updates instead of one pre-aggregated sum."""
        return (self.force_per_client or self.aggregator.needs_per_client
                or any(s.needs_per_client for s in self.server_steps))

    @property
    def stateful_clients(self) -> bool:
        """Whether client steps keep per-client state (checkpoints then save the actors' copies)."""
        return any(s.stateful for s in self.client_steps)

    def client_side(self, update: ClientUpdate, ctx: ClientContext) -> ClientUpdate:
        for step in self.client_steps:
            update = step.apply(update, ctx)
        return update

    def client_side_many(self, updates: list[ClientUpdate], ctxs: list[ClientContext]) -> list[ClientUpdate]:
        """``client_side`` for all of an actor's clients (steps may batch their work)."""
        for step in self.client_steps:
            updates = step.apply_many(updates, ctxs)
        return updates

    def pack(self, updates: list[ClientUpdate]) -> Arrivals:
        """What an actor returns for its clients (after ``client_side``)."""
        if self.per_client:
            return Arrivals(updates=updates)
        return Arrivals(aggregate=AggregatedUpdate.from_clients(updates))

    def server_side(self, arrivals: list[Arrivals], ctx: ServerContext) -> AggregatedUpdate:
        """The round's aggregated update from everything that arrived."""
        if self.per_client:
            updates = [u for a in arrivals for u in (a.updates or [])]
            aggregate = self._summed(updates, ctx)
            if aggregate is None:
                for step in self.server_steps:
                    if step.needs_per_client:
                        updates = step.on_clients(updates, ctx)
                aggregate = self.aggregator.aggregate(updates, ctx) if updates else AggregatedUpdate()
        else:
            aggregate = AggregatedUpdate.combine(a.aggregate for a in arrivals if a.aggregate is not None)
        for step in self.server_steps:
            aggregate = step.on_aggregate(aggregate, ctx)
        return aggregate

    def _summed(self, updates: list[ClientUpdate], ctx: ServerContext) -> AggregatedUpdate | None:
        """The sum straight from the one step that needs per-client updates (``sum_clients``),
        where the aggregator only sums them (``needs_per_client`` False: the sum the fast path's
        actors take) and nothing else reads them; None otherwise."""
        steps = [s for s in self.server_steps if s.needs_per_client]
        if self.force_per_client or self.aggregator.needs_per_client or len(steps) != 1 or not updates:
            return None
        return steps[0].sum_clients(updates, ctx)

    def state_dict(self) -> dict:
        out = {f"server{i}": s.state_dict() for i, s in enumerate(self.server_steps)}
        return {**out, "aggregator": self.aggregator.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        for i, s in enumerate(self.server_steps):
            s.load_state_dict(state.get(f"server{i}", {}))
        self.aggregator.load_state_dict(state.get("aggregator", {}))

    def report(self) -> dict:
        """What the server steps and the aggregator report for the run's result (privacy spent,
        secure-aggregation overhead ...)."""
        out = dict(self.aggregator.report())
        for s in self.server_steps:
            out.update(s.report())
        return out
