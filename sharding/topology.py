"""The machine a plan is for: identical GPUs, each with HBM and a share of host memory over UVM,
joined by a network that carries the embedding all-to-all.

Defaults resemble an 8 x A100-40GB host: 1.5 TB/s HBM, PCIe 4.0 UVM reads of embedding rows at
about 16 GB/s, 1 TB host memory (128 GB per GPU), and 600 GB/s between GPUs (NVLink; TorchRec's
planner uses the same intra-host figure). ``hbm_reserved_fraction`` (default 0.15, as TorchRec's
planner reserves) is kept free for activations and the dense model; every planner, TorchRec's
included, is given the same remaining budget.

A pydantic model: unknown keys (in a plan's recorded topology, say) and non-integer counts are
errors naming the field, not silently dropped or rounded.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from pydantic import Field, ValidationError
from pydantic.dataclasses import dataclass

from data_pipeline.errors import ConfigError
from sharding.config import STRICT, Number, StrictCount, validation_message

GB = 1024**3


@dataclass(frozen=True, config=STRICT)
class Topology:
    gpus: Annotated[StrictCount, Field(ge=1)] = 8
    hbm_gb: Annotated[Number, Field(ge=0)] = 40.0  # per GPU
    hbm_reserved_fraction: Annotated[Number, Field(ge=0, lt=1)] = 0.15
    uvm_gb: Annotated[Number, Field(ge=0)] = 128.0  # host memory per GPU for cold rows
    hbm_gbps: Annotated[Number, Field(gt=0)] = 1555.0
    uvm_gbps: Annotated[Number, Field(gt=0)] = 16.0
    batch_size: Annotated[StrictCount, Field(ge=1)] = 2048  # per GPU, as TorchRec counts it
    table_fixed_us: Annotated[Number, Field(ge=0)] = 2.0  # per shard and iteration: kernel and bookkeeping
    comm_gbps: Annotated[Number, Field(gt=0)] = 600.0  # all-to-all bandwidth per GPU
    id_ns: Annotated[Number, Field(ge=0)] = 0.0  # per id looked up, beyond its bytes (0 on GPUs; CPUs pay latency)

    @property
    def hbm_budget_bytes(self) -> int:
        """HBM per GPU that tables may use (after the reserved fraction)."""
        return int(self.hbm_gb * GB * (1.0 - self.hbm_reserved_fraction))

    @property
    def uvm_budget_bytes(self) -> int:
        return int(self.uvm_gb * GB)

    @property
    def global_batch(self) -> int:
        """The samples of one iteration over all GPUs: what a table-wise shard looks up."""
        return self.gpus * self.batch_size

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, where: str = "topology") -> Topology:
        """A topology from JSON (a plan's record) or flags; a bad value is a ``ConfigError`` whose
        field is ``{where}.{field}`` (or just the field when ``where`` is empty)."""
        if not isinstance(d, dict):
            raise ConfigError(where, f"expected an object, found {type(d).__name__}")
        try:
            return cls(**d)
        except ValidationError as exc:
            field = ".".join(str(p) for p in exc.errors()[0].get("loc", ()))
            message = validation_message(exc).split(": ", 1)[-1]
            raise ConfigError(".".join(x for x in (where, field) if x) or "topology", message) from None
