"""Device tiers: the heterogeneity of federated clients (compute, memory, bandwidth, availability)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from data_pipeline.errors import ConfigError


@dataclass(frozen=True)
class Tier:
    name: str
    share: float
    speed: float = 1.0
    memory_mb: float = 16.0
    up_mbps: float = 10.0
    down_mbps: float = 50.0
    dropout: float = 0.0

    def validate(self, where: str) -> None:
        for field_name in ("share", "speed", "memory_mb", "up_mbps", "down_mbps"):
            value = getattr(self, field_name)
            if not isinstance(value, int | float) or value < 0 or (field_name != "share" and value == 0):
                raise ConfigError(f"{where}.{field_name}", f"must be a positive number, got {value!r}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"{where}.dropout", f"must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class TierSpec:
    tiers: tuple[Tier, ...]

    def __post_init__(self) -> None:
        if not self.tiers:
            raise ConfigError("tiers", "at least one tier is needed")
        for i, t in enumerate(self.tiers):
            t.validate(f"tiers[{i}]")
        total = sum(t.share for t in self.tiers)
        if not np.isclose(total, 1.0, atol=1e-6):
            raise ConfigError("tiers.share", f"tier shares must sum to 1, got {total:.6g}")
        names = [t.name for t in self.tiers]
        if len(set(names)) != len(names):
            raise ConfigError("tiers.name", f"tier names must be unique, got {names}")

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tiers]

    @property
    def shares(self) -> list[float]:
        return [t.share for t in self.tiers]

    @classmethod
    def from_list(cls, items: list[dict]) -> TierSpec:
        tiers = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise ConfigError(f"tiers[{i}]", f"expected a mapping, got {item!r}")
            unknown = set(item) - set(Tier.__dataclass_fields__)
            if unknown:
                raise ConfigError(f"tiers[{i}]", f"unknown keys {sorted(unknown)}; expected {sorted(Tier.__dataclass_fields__)}")
            if "name" not in item or "share" not in item:
                raise ConfigError(f"tiers[{i}]", "needs at least 'name' and 'share'")
            tiers.append(Tier(**item))
        return cls(tuple(tiers))

    @classmethod
    def load(cls, path: str | Path) -> TierSpec:
        p = Path(path)
        if not p.exists():
            raise ConfigError("tiers", f"tier spec file {p} not found")
        doc = yaml.safe_load(p.read_text())
        items = doc.get("tiers") if isinstance(doc, dict) else doc
        if not isinstance(items, list):
            raise ConfigError("tiers", f"{p}: expected a list of tiers (or a mapping with 'tiers')")
        return cls.from_list(items)

    @classmethod
    def default(cls) -> TierSpec:
        text = resources.files("fedrec").joinpath("defaults/tiers_3.yaml").read_text()
        return cls.from_list(yaml.safe_load(text)["tiers"])

    def to_list(self) -> list[dict]:
        return [asdict(t) for t in self.tiers]
