"""The update pipeline's interfaces: what a client does to its update before it leaves the device,
and what the server does with what arrives (after Flower's client mods and strategy wrappers).

- ``ClientStep.apply`` runs inside the actor on each client's update, in order (clip, compress,
  add local noise, mask ...). It may keep per-client state (error-feedback memory) in
  ``ctx.state``, which persists for that client between the rounds it takes part in.
- ``ServerStep`` has two hooks. ``on_clients`` sees the individual updates (decompress, clip on the
  server, robust statistics); a step that overrides it sets ``needs_per_client = True``.
  ``on_aggregate`` sees only their weighted sum (add central noise, unmask a secure sum).
- ``Aggregator`` turns per-client updates into one sum (the weighted mean's numerator and
  denominator by default; robust aggregators replace it and need the individual updates).

The round loop keeps the fast path, where each actor pre-aggregates its clients and returns one
sum, unless the aggregator or a server step needs per-client updates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fedrec.updates import AggregatedUpdate, ClientUpdate


@dataclass(frozen=True)
class ModelShapes:
    """What a step may know about the model it handles, never its values: every tensor's shape,
    and which tensors are embedding tables (state-dict name -> sparse feature). Secure
    aggregation pads to whole tables and central DP noises every row, so both need table sizes."""

    shapes: dict[str, tuple[int, ...]]
    tables: dict[str, str]

    @staticmethod
    def of(state: dict, tables: dict[str, str]) -> ModelShapes:
        return ModelShapes({n: tuple(t.shape) for n, t in state.items()}, dict(tables))

    def table_of(self, feature: str) -> str:
        for name, f in self.tables.items():
            if f == feature:
                return name
        raise KeyError(feature)


@dataclass
class ClientContext:
    client: int
    round: int
    seed: int  # the client's seed this round (deterministic in run seed, round, client)
    state: dict = field(default_factory=dict)  # this client's persistent step state


@dataclass
class ServerContext:
    round: int
    seed: int
    num_clients: int  # clients in the population (e.g. for sampling rates)


class ClientStep:
    """One transformation of a client's update before upload."""

    name = "client-step"
    stateful = False  # keeps per-client state in ctx.state that checkpoints must save

    def apply(self, update: ClientUpdate, ctx: ClientContext) -> ClientUpdate:
        raise NotImplementedError

    def apply_many(self, updates: list[ClientUpdate], ctxs: list[ClientContext]) -> list[ClientUpdate]:
        """All of an actor's clients at once; a step whose arithmetic batches overrides it."""
        return [self.apply(u, c) for u, c in zip(updates, ctxs)]


class ServerStep:
    """One transformation on the server: of the individual updates and/or of their sum."""

    name = "server-step"
    needs_per_client = False

    def on_clients(self, updates: list[ClientUpdate], ctx: ServerContext) -> list[ClientUpdate]:
        return updates

    def on_aggregate(self, aggregate: AggregatedUpdate, ctx: ServerContext) -> AggregatedUpdate:
        return aggregate

    def sum_clients(self, updates: list[ClientUpdate], ctx: ServerContext) -> AggregatedUpdate | None:
        """``AggregatedUpdate.from_clients(self.on_clients(updates, ctx))``, for a step that can
        compute it without building the individual updates (a decoder sums the batch it decoded);
        None where it cannot. The pipeline asks when nothing else needs the individual updates."""
        del updates, ctx
        return None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        del state

    def report(self) -> dict:
        """Run-level facts for the result JSON (``epsilon``, ``secagg``, time spent decoding ...);
        empty by default."""
        return {}


class Aggregator:
    """Per-client updates -> one weighted sum whose ``mean()`` is the round's update."""

    name = "aggregator"
    needs_per_client = True

    def aggregate(self, updates: list[ClientUpdate], ctx: ServerContext) -> AggregatedUpdate:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        del state

    def report(self) -> dict:
        return {}
