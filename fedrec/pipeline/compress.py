"""Upload compression as pipeline steps: ``Compress`` on the client (the last client step) and
``Decompress`` on the server (the first server step).

``Compress`` adds the client's error-feedback residual to its update, encodes it (``wire``), and
keeps as the new residual what the encoding dropped: update + old residual - decoded. An actor's
clients are encoded together (``encode_updates`` stacks them), which keeps the codec's own time
small next to training. The
residual and the codecs' state (PowerSGD's Q) are the client's own (``ctx.state``): they stay
with it between the rounds it takes part in, and checkpoints save them.

``Decompress`` needs the individual updates (a sum of low-rank or sparse updates is neither), so
a compressed run takes the pipeline's per-client path: each actor returns its clients' encoded
bytes, the driver decodes them, and the aggregator averages as usual. Where nothing else needs
the individual updates, the driver sums the decoded batch directly (``sum_clients``), bit for bit
the aggregator's sum, without building an update per client. What is counted as
uploaded is the length of those bytes.
"""

from __future__ import annotations

import time

import numpy as np

from fedrec.pipeline.base import ClientContext, ClientStep, ServerContext, ServerStep
from fedrec.pipeline.codec import make_codec
from fedrec.pipeline.wire import (
    CompressionPlan,
    EncodedUpdate,
    WireSchema,
    decode_batch,
    decode_updates,
    encode_updates,
    update_nbytes,
)
from fedrec.threads import single_threaded
from fedrec.updates import AggregatedUpdate, ClientUpdate, State


def plan_for(cfg) -> CompressionPlan:
    """The codecs a compression config asks for (``cfg``: method, rank, fraction, precision, apply_to)."""
    codec = make_codec(cfg.method, rank=cfg.rank, fraction=cfg.fraction, precision=cfg.precision)
    return CompressionPlan.of(codec, cfg.apply_to)


def compressed_bytes(cfg, state: State, tables, touched: dict[str, np.ndarray], up: np.ndarray,
                     down: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every client's upload and download size under ``cfg.compression`` (``up``/``down``: the
    uncompressed sizes, kept where nothing is compressed), from the rows each touches."""
    comp = getattr(cfg, "compression", None)
    if comp is None:
        return up, down
    plan = plan_for(comp)
    if comp.method != "none":
        up = update_nbytes(WireSchema.of(state, tables, whole_tables=not cfg.client.sparse_updates), plan, touched)
    if comp.downlink == "same":
        down = update_nbytes(WireSchema.of(state, tables), plan, touched)
    return up, down


class Compress(ClientStep):
    name = "compress"
    stateful = True

    def __init__(self, cfg, schema: WireSchema) -> None:
        self.plan = plan_for(cfg)
        self.schema = schema
        self.error_feedback = cfg.error_feedback

    def apply(self, update: ClientUpdate, ctx: ClientContext) -> EncodedUpdate:
        return self.apply_many([update], [ctx])[0]

    def apply_many(self, updates: list[ClientUpdate], ctxs: list[ClientContext]) -> list[EncodedUpdate]:
        if not updates:
            return []
        self.plan.dense.prepare()
        self.plan.tables.prepare()
        started = time.perf_counter()
        carry = [c.state.get("residual", {}) for c in ctxs] if self.error_feedback else None
        enc = encode_updates(updates, self.schema, self.plan, [c.state.setdefault("codec", {}) for c in ctxs],
                             [c.seed for c in ctxs], carry=carry, keep_left=self.error_feedback, keep_decoded=False)
        if self.error_feedback:
            for c, rest in zip(ctxs, enc.left):
                c.state["residual"] = rest
        each = (time.perf_counter() - started) / len(updates)
        return [EncodedUpdate(u.client, u.weight, w, encode_seconds=each) for u, w in zip(updates, enc.wires)]


class Decompress(ServerStep):
    name = "decompress"
    needs_per_client = True

    def __init__(self, cfg, schema: WireSchema) -> None:
        self.plan = plan_for(cfg)
        self.schema = schema
        self.seconds = {"encode": 0.0, "decode": 0.0}

    @single_threaded
    def on_clients(self, updates: list, ctx: ServerContext) -> list[ClientUpdate]:
        encoded = [u for u in updates if isinstance(u, EncodedUpdate)]
        started = time.perf_counter()
        decoded = iter(decode_updates(encoded, self.schema, self.plan))
        self._count(encoded, started)
        return [next(decoded) if isinstance(u, EncodedUpdate) else u for u in updates]

    @single_threaded
    def sum_clients(self, updates: list, ctx: ServerContext) -> AggregatedUpdate | None:
        """The decoded updates' weighted sum, taken over the decoded batch
        (``DecodedBatch.weighted_sum``), when every update arrived encoded. Decoding is timed
        as the codec's; the sum is the aggregation every run does (the per-client path leaves it
        to the aggregator, the uncompressed fast path to the actors), so it is not."""
        if not all(isinstance(u, EncodedUpdate) for u in updates):
            return None
        started = time.perf_counter()
        batch = decode_batch(updates, self.schema, self.plan)
        self._count(updates, started)
        return batch.weighted_sum()

    def _count(self, encoded: list[EncodedUpdate], started: float) -> None:
        self.seconds["decode"] += time.perf_counter() - started
        self.seconds["encode"] += sum(u.encode_seconds for u in encoded)

    def report(self) -> dict:
        """Seconds spent encoding (summed over clients, in the actors) and decoding (driver)."""
        return {"encode_seconds": self.seconds["encode"], "decode_seconds": self.seconds["decode"]}

    def state_dict(self) -> dict:
        return {"seconds": dict(self.seconds)}

    def load_state_dict(self, state: dict) -> None:
        self.seconds = dict(state.get("seconds", self.seconds))
