"""Device tiers: the heterogeneity of federated clients (compute, memory, bandwidth, availability)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import yaml
from pydantic import Field, field_validator, model_validator

from data_pipeline.errors import ConfigError
from fedrec.configbase import StrictModel, validate


class ExecutionTarget(StrictModel):
    """Where on the device a client trains (AutoFL: CPU little/big cores, GPU, NPU/DSP): ``speed``
    multiplies the tier's speed, ``watts`` is the power drawn while training on it, and with
    chance ``interference`` a round is slowed ``slowdown``-fold (co-running apps, thermal
    throttling: the stochastic runtime variance AutoFL learns around)."""

    name: str
    speed: float = Field(1.0, gt=0)
    watts: float = Field(3.0, gt=0)
    interference: float = Field(0.0, ge=0, le=1)
    slowdown: float = Field(1.0, ge=1)


class Tier(StrictModel):
    """Energy fields are estimates for a mid-range phone (defaults; see ``fedrec.energy.model`` for
    the published figures they come from); a tier spec sets its own per device class."""

    name: str
    share: float = Field(ge=0, le=1)
    speed: float = Field(1.0, gt=0)  # relative local-compute speed (1.0: the reference device)
    memory_mb: float = Field(16.0, gt=0)
    up_mbps: float = Field(10.0, gt=0)
    down_mbps: float = Field(50.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)  # chance a selected client does not report
    compute_watts: float = Field(3.0, gt=0)  # power while training (the implicit target when ``targets`` is empty)
    idle_watts: float = Field(0.3, ge=0)  # power while waiting for the round to end
    up_joules_per_byte: float = Field(5e-6, ge=0)  # the device's radio, sending
    down_joules_per_byte: float = Field(2e-6, ge=0)  # ... and receiving
    embodied_gco2e_per_hour: float = Field(2.0, ge=0)  # manufacturing carbon amortised over the device's life
    runtime_sigma: float = Field(0.0, ge=0)  # per-round log-normal spread of a client's time (network changes)
    targets: tuple[ExecutionTarget, ...] = Field((), strict=False)  # empty: one target at the tier's speed

    @property
    def execution_targets(self) -> tuple[ExecutionTarget, ...]:
        """The tier's targets; the first is the default (the one non-learning policies use)."""
        return self.targets or (ExecutionTarget(name="default", speed=1.0, watts=self.compute_watts),)


class TierSpec(StrictModel):
    tiers: tuple[Tier, ...] = Field(min_length=1, strict=False)

    @field_validator("tiers")
    @classmethod
    def _unique(cls, tiers):
        names = [t.name for t in tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"tier names must be unique, got {names}")
        return tiers

    @model_validator(mode="after")
    def _shares(self):
        total = sum(t.share for t in self.tiers)
        if not np.isclose(total, 1.0, atol=1e-6):
            raise ValueError(f"tier shares must sum to 1, got {total:.6g}")
        return self

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tiers]

    @property
    def shares(self) -> list[float]:
        return [t.share for t in self.tiers]

    @classmethod
    def from_list(cls, items) -> TierSpec:
        return validate(cls, {"tiers": items})

    @classmethod
    def load(cls, path: str | Path) -> TierSpec:
        p = Path(path)
        if not p.is_file():
            raise ConfigError("tiers", f"tier spec file {p} not found")
        try:
            doc = yaml.safe_load(p.read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError("tiers", f"{p} is not valid YAML: {str(exc).splitlines()[0]}") from None
        items = doc.get("tiers") if isinstance(doc, dict) else doc
        if not isinstance(items, list):
            raise ConfigError("tiers", f"{p}: expected a list of tiers (or a mapping with 'tiers')")
        return cls.from_list(items)

    @classmethod
    def default(cls) -> TierSpec:
        text = resources.files("fedrec").joinpath("defaults/tiers_3.yaml").read_text()
        return cls.from_list(yaml.safe_load(text)["tiers"])

    def to_list(self) -> list[dict]:
        return [t.model_dump() for t in self.tiers]
