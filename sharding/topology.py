"""The machine a plan is for: identical GPUs, each with HBM and a share of host memory over UVM.

Defaults resemble an 8 x A100-40GB host: 1.5 TB/s HBM, PCIe 4.0 UVM reads of embedding rows at
about 16 GB/s, 1 TB host memory (128 GB per GPU). ``hbm_reserved_fraction`` (default 0.15, as
TorchRec's planner reserves) is kept free for activations and the dense model; every planner,
TorchRec's included, is given the same remaining budget.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from data_pipeline.errors import ConfigError

GB = 1024**3


@dataclass(frozen=True)
class Topology:
    gpus: int = 8
    hbm_gb: float = 40.0  # per GPU
    hbm_reserved_fraction: float = 0.15
    uvm_gb: float = 128.0  # host memory per GPU for cold rows
    hbm_gbps: float = 1555.0
    uvm_gbps: float = 16.0
    batch_size: int = 2048  # per GPU, as TorchRec counts it
    table_fixed_us: float = 2.0  # per table and iteration: kernel and bookkeeping overhead

    def __post_init__(self) -> None:
        checks = (
            ("gpus", self.gpus >= 1 and float(self.gpus).is_integer()),
            ("hbm_gb", self.hbm_gb >= 0),
            ("hbm_reserved_fraction", 0 <= self.hbm_reserved_fraction < 1),
            ("uvm_gb", self.uvm_gb >= 0),
            ("hbm_gbps", self.hbm_gbps > 0),
            ("uvm_gbps", self.uvm_gbps > 0),
            ("batch_size", self.batch_size >= 1),
            ("table_fixed_us", self.table_fixed_us >= 0),
        )
        for name, ok in checks:
            if not ok:
                raise ConfigError(name, f"out of range: {getattr(self, name)!r}")

    @property
    def hbm_budget_bytes(self) -> int:
        """HBM per GPU that tables may use (after the reserved fraction)."""
        return int(self.hbm_gb * GB * (1.0 - self.hbm_reserved_fraction))

    @property
    def uvm_budget_bytes(self) -> int:
        return int(self.uvm_gb * GB)

    @property
    def global_batch(self) -> int:
        """Table-wise sharding: a table's owner looks up its ids for every GPU's samples."""
        return self.gpus * self.batch_size

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Topology:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)
