"""One typed config per federated run, loaded from YAML and validated once, at the edge.

Unknown keys and bad values raise ``ConfigError`` naming the field (``strategy.name``,
``tiers[1].share``, ...) so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from data_pipeline.errors import ConfigError
from fedrec.client.clock import ClockConfig
from fedrec.client.local import ClientTrainConfig
from fedrec.client.tiers import TierSpec
from fedrec.model import ModelConfig
from fedrec.strategies import SAMPLING, STRATEGIES, StrategyConfig

PARTITIONS = ("natural", "dirichlet", "quantity")
TIER_ASSIGNMENT = ("random", "correlated")
TIER_STATISTICS = ("rows", "inverse_rows")
MODES = ("sync", "fel", "fedbuff", "fairness")
CLUSTERINGS = ("tier", "data", "random")
SERVER_ROWS = ("exclusive", "shared")
STALENESS = ("polynomial", "constant", "threshold")
OPTIMIZATIONS = ("deadline", "over_selection", "fel")


def _default_submodels() -> tuple[ModelConfig, ...]:
    return tuple(ModelConfig(embedding_dim=d, dense_arch=(d,), over_arch=(d,)) for d in (8, 16, 32))


@dataclass(frozen=True)
class EnsembleConfig:
    """FEL (``mode: fel``): one sub-model per client cluster, then a server-side over-arch."""

    clustering: str = "tier"  # tier (cluster k = tier k), data (k-means on user statistics), random
    submodels: tuple[ModelConfig, ...] = field(default_factory=_default_submodels)  # one per cluster
    server_fraction: float = 0.1  # training rows the server holds for the over-arch
    server_rows: str = "exclusive"  # exclusive: removed from clients; shared: clients keep them too
    over_arch: tuple[int, ...] = (64, 32)
    over_epochs: int = 30
    over_lr: float = 1e-3
    over_batch_size: int = 256
    over_validation: float = 0.2  # of the server rows, held out to pick the over-arch epoch
    baseline: bool = True  # also train the smallest sub-model on all clients (same client budget)


@dataclass(frozen=True)
class AsyncConfig:
    """FedBuff (``mode: fedbuff``): a server step after every ``buffer_size`` updates; ``rounds``
    counts server steps."""

    buffer_size: int = 10
    concurrency: int = 50  # clients training at once
    staleness: str = "polynomial"  # weight 1/(1+s)^exponent; constant: 1; threshold: 1 up to max_staleness
    staleness_exponent: float = 0.5
    max_staleness: int = 20  # threshold: staler updates are discarded


@dataclass(frozen=True)
class FairnessConfig:
    """RF^2 (``mode: fairness``): per-tier AUC change of each optimization against plain sync FedAvg,
    under the configured tier assignment and (``compare_random``) under random tiers."""

    optimizations: tuple[str, ...] = OPTIMIZATIONS
    deadline_quantile: float = 0.7  # deadline = this quantile of all clients' simulated round times
    over_selection: float = 0.3
    compare_random: bool = True


@dataclass(frozen=True)
class DataConfig:
    path: str = "ml-100k"
    format: str = "movielens"
    columns: str | None = None
    split: str = "temporal"
    test_fraction: float = 0.2
    label_threshold: float = 4.0
    # ml100k-fed: no user embedding (a user's own vector never leaves their device in practice)
    features: tuple[str, ...] = ("item", "occupation", "gender", "age_bucket")
    partition: str = "natural"
    num_clients: int | None = None  # dirichlet / quantity partitions
    alpha: float = 0.5


@dataclass(frozen=True)
class FederatedConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    client: ClientTrainConfig = field(default_factory=ClientTrainConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    clock: ClockConfig = field(default_factory=ClockConfig)
    tiers: TierSpec = field(default_factory=TierSpec.default)
    rounds: int = 30
    clients_per_round: int = 50
    sampling: str = "uniform"
    tier_assignment: str = "random"
    tier_alpha: float = 0.5  # correlated assignment strength (small = strong)
    tier_statistic: str = "rows"  # correlated: rows = more data on faster tiers; inverse_rows = the reverse
    deadline: float | None = None  # simulated seconds; later clients are dropped
    over_selection: float = 0.0  # select (1 + x) * clients_per_round, keep the first finishers
    num_actors: int | None = None  # default: one per CPU Ray sees
    actor_num_cpus: float = 1.0
    actor_num_gpus: float = 0.0
    eval_every: int = 5
    seed: int = 0
    checkpoint_dir: str | None = None
    checkpoint_every: int = 0
    fault_round: int | None = None  # fault injection: kill an actor mid-round in this round
    fault_actor: int = 0
    plot: str | None = None  # PNG of AUC vs round and vs simulated time
    mode: str = "sync"  # sync FedAvg-family rounds, fel ensembles, fedbuff async, fairness (RF^2)
    target_auc: float | None = None  # report simulated seconds and bytes to first reach it
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    async_: AsyncConfig = field(default_factory=AsyncConfig)
    fairness: FairnessConfig = field(default_factory=FairnessConfig)

    def __post_init__(self) -> None:
        _check(self.rounds >= 1, "rounds", f"must be at least 1, got {self.rounds}")
        _check(self.clients_per_round >= 1, "clients_per_round", f"must be at least 1, got {self.clients_per_round}")
        _check(self.sampling in SAMPLING, "sampling", f"unknown {self.sampling!r}; expected one of {SAMPLING}")
        _check(self.tier_assignment in TIER_ASSIGNMENT, "tier_assignment", f"expected one of {TIER_ASSIGNMENT}")
        _check(self.tier_statistic in TIER_STATISTICS, "tier_statistic", f"expected one of {TIER_STATISTICS}")
        _check(self.strategy.name.lower() in STRATEGIES, "strategy.name",
               f"unknown strategy {self.strategy.name!r}; expected one of {sorted(STRATEGIES)}")
        _check(self.client.lr > 0, "client.lr", f"must be positive, got {self.client.lr}")
        _check(self.client.local_epochs >= 1, "client.local_epochs", f"must be at least 1, got {self.client.local_epochs}")
        _check(self.client.batch_size >= 1, "client.batch_size", f"must be at least 1, got {self.client.batch_size}")
        _check(self.client.proximal_mu >= 0, "client.proximal_mu", f"must be non-negative, got {self.client.proximal_mu}")
        _check(self.strategy.server_lr > 0, "strategy.server_lr", f"must be positive, got {self.strategy.server_lr}")
        _check(self.over_selection >= 0, "over_selection", f"must be non-negative, got {self.over_selection}")
        _check(self.deadline is None or self.deadline > 0, "deadline", f"must be positive, got {self.deadline}")
        _check(self.eval_every >= 1, "eval_every", f"must be at least 1, got {self.eval_every}")
        _check(self.num_actors is None or self.num_actors >= 1, "num_actors", f"must be at least 1, got {self.num_actors}")
        _check(self.data.partition in PARTITIONS, "data.partition", f"unknown {self.data.partition!r}; expected one of {PARTITIONS}")
        _check(0 <= self.data.test_fraction < 1, "data.test_fraction", f"must be in [0, 1), got {self.data.test_fraction}")
        _check(self.clock.step_seconds > 0, "clock.step_seconds", f"must be positive, got {self.clock.step_seconds}")
        _check(self.mode in MODES, "mode", f"unknown {self.mode!r}; expected one of {MODES}")
        _check(self.target_auc is None or 0 < self.target_auc < 1, "target_auc", f"must be in (0, 1), got {self.target_auc}")
        _check_ensemble(self.ensemble, len(self.tiers.tiers))
        _check_async(self.async_)
        _check_fairness(self.fairness)


def _check_ensemble(e: EnsembleConfig, num_tiers: int) -> None:
    _check(e.clustering in CLUSTERINGS, "ensemble.clustering", f"unknown {e.clustering!r}; expected one of {CLUSTERINGS}")
    _check(len(e.submodels) >= 1, "ensemble.submodels", "at least one sub-model is needed")
    _check(e.clustering != "tier" or len(e.submodels) == num_tiers, "ensemble.submodels",
           f"tier clustering needs one sub-model per tier ({num_tiers}), got {len(e.submodels)}")
    _check(0 < e.server_fraction < 1, "ensemble.server_fraction", f"must be in (0, 1), got {e.server_fraction}")
    _check(e.server_rows in SERVER_ROWS, "ensemble.server_rows", f"unknown {e.server_rows!r}; expected one of {SERVER_ROWS}")
    _check(all(h >= 1 for h in e.over_arch), "ensemble.over_arch", f"layer sizes must be positive, got {list(e.over_arch)}")
    _check(e.over_epochs >= 1, "ensemble.over_epochs", f"must be at least 1, got {e.over_epochs}")
    _check(e.over_lr > 0, "ensemble.over_lr", f"must be positive, got {e.over_lr}")
    _check(e.over_batch_size >= 1, "ensemble.over_batch_size", f"must be at least 1, got {e.over_batch_size}")
    _check(0 <= e.over_validation < 1, "ensemble.over_validation", f"must be in [0, 1), got {e.over_validation}")


def _check_async(a: AsyncConfig) -> None:
    _check(a.buffer_size >= 1, "async_.buffer_size", f"must be at least 1, got {a.buffer_size}")
    _check(a.concurrency >= a.buffer_size, "async_.concurrency",
           f"must be at least buffer_size ({a.buffer_size}), got {a.concurrency}")
    _check(a.staleness in STALENESS, "async_.staleness", f"unknown {a.staleness!r}; expected one of {STALENESS}")
    _check(a.staleness_exponent >= 0, "async_.staleness_exponent", f"must be non-negative, got {a.staleness_exponent}")
    _check(a.max_staleness >= 0, "async_.max_staleness", f"must be non-negative, got {a.max_staleness}")


def _check_fairness(f: FairnessConfig) -> None:
    bad = [o for o in f.optimizations if o not in OPTIMIZATIONS]
    _check(not bad, "fairness.optimizations", f"unknown {bad}; expected some of {OPTIMIZATIONS}")
    _check(0 < f.deadline_quantile < 1, "fairness.deadline_quantile", f"must be in (0, 1), got {f.deadline_quantile}")
    _check(f.over_selection > 0, "fairness.over_selection", f"must be positive, got {f.over_selection}")


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ConfigError(name, message)


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "client": ClientTrainConfig, "strategy": StrategyConfig, "clock": ClockConfig,
             "ensemble": EnsembleConfig, "async_": AsyncConfig, "fairness": FairnessConfig}


def config_from_dict(doc: dict[str, Any], base_dir: Path | None = None) -> FederatedConfig:
    if not isinstance(doc, dict):
        raise ConfigError("<root>", f"expected a mapping, got {type(doc).__name__}")
    if "async" in doc:  # `async` is a Python keyword; the field is `async_`
        doc = {("async_" if k == "async" else k): v for k, v in doc.items()}
    top = {f.name for f in dataclasses.fields(FederatedConfig)}
    unknown = set(doc) - top
    if unknown:
        raise ConfigError(sorted(unknown)[0], f"unknown key; expected one of {sorted(top)}")
    kwargs: dict[str, Any] = {}
    for key, value in doc.items():
        if key in _SECTIONS:
            kwargs[key] = _section(key, _SECTIONS[key], value or {})
        elif key == "tiers":
            if isinstance(value, str):
                path = Path(value)
                if base_dir is not None and not path.is_absolute() and not path.exists():
                    path = base_dir / path
                kwargs[key] = TierSpec.load(path)
            elif isinstance(value, list):
                kwargs[key] = TierSpec.from_list(value)
            else:
                raise ConfigError("tiers", "expected a list of tiers or a path to a tier spec YAML")
        else:
            kwargs[key] = value
    try:
        return FederatedConfig(**kwargs)
    except TypeError as exc:
        raise ConfigError("<root>", str(exc)) from None


def _section(name: str, cls, values: dict) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(name, f"expected a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(fields)
    if unknown:
        raise ConfigError(f"{name}.{sorted(unknown)[0]}", f"unknown key; expected one of {sorted(fields)}")
    clean = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    if cls is EnsembleConfig and "submodels" in clean:
        items = clean["submodels"]
        if not isinstance(items, tuple) or not all(isinstance(m, dict) for m in items):
            raise ConfigError(f"{name}.submodels", "expected a list of model mappings (embedding_dim, dense_arch, over_arch)")
        clean["submodels"] = tuple(_section(f"{name}.submodels[{i}]", ModelConfig, m) for i, m in enumerate(items))
    for k, v in clean.items():
        default = fields[k].default
        if isinstance(default, int | float) and not isinstance(default, bool) and not isinstance(v, int | float):
            raise ConfigError(f"{name}.{k}", f"expected a number, got {v!r}")
    return cls(**clean)


def load_config(path: str | Path, **overrides: Any) -> FederatedConfig:
    p = Path(path)
    if not p.exists():
        raise ConfigError("--config", f"config file {p} not found")
    try:
        doc = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError("--config", f"{p} is not valid YAML: {exc}") from None
    cfg = config_from_dict(doc, p.parent)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(cfg, **overrides) if overrides else cfg


def config_to_dict(cfg: FederatedConfig) -> dict:
    out = dataclasses.asdict(cfg)
    out["tiers"] = cfg.tiers.to_list()
    return out
