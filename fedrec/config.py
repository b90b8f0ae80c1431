"""One typed config per federated run, read from YAML and validated once, at the edge.

The schema is pydantic (see ``fedrec.configbase``): unknown keys and wrong types are refused, and
every error becomes one line naming the field (``fedrec: error: config field 'client.lr': ...``).
Each mode's own section is accepted only in that mode: ``ensemble`` for ``fel`` (and the fairness
study, whose FEL arm uses it), ``async`` for ``fedbuff``, ``fairness`` for ``fairness``,
``compression`` for ``sync`` and ``fedbuff`` (uploads) and ``gossip`` (the update messages a trained
node sends its neighbours), ``gossip`` for ``gossip``, ``selection`` for ``sync``; ``energy`` in every
mode.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationInfo, field_validator, model_validator

from data_pipeline.errors import ConfigError
from fedrec.attacks.config import AttackConfig
from fedrec.client.clock import ClockConfig
from fedrec.client.config import ClientTrainConfig
from fedrec.client.tiers import TierSpec
from fedrec.configbase import StrictModel, StrTuple, validate
from fedrec.energy.model import EnergyConfig
from fedrec.models.config import ModelConfig
from fedrec.pipeline.robust.config import AggregatorConfig
from fedrec.privacy.config import PrivacyConfig
from fedrec.secagg.config import SecureAggregationConfig
from fedrec.selection.config import SelectionConfig
from fedrec.strategies.config import Sampling, StrategyConfig

Mode = Literal["sync", "fel", "fedbuff", "fairness", "gossip"]
MODES = ("sync", "fel", "fedbuff", "fairness", "gossip")
OPTIMIZATIONS = ("deadline", "over_selection", "fel")
MODE_SECTIONS = {"ensemble": ("fel", "fairness"), "async_": ("fedbuff",), "fairness": ("fairness",),
                 # robustness, privacy and secure aggregation: synchronous rounds only
                 "attack": ("sync",), "aggregator": ("sync",), "privacy": ("sync",), "secure_aggregation": ("sync",),
                 "compression": ("sync", "fedbuff", "gossip"), "gossip": ("gossip",),
                 "selection": ("sync",)}  # learned client selection plugs into the synchronous round


def _default_submodels() -> tuple[ModelConfig, ...]:
    return tuple(ModelConfig(embedding_dim=d, dense_arch=(d,), over_arch=(d,)) for d in (8, 16, 32))


class EnsembleConfig(StrictModel):
    """FEL (``mode: fel``): one sub-model per client cluster, then a server-side over-arch."""

    clustering: Literal["tier", "data", "random"] = "tier"  # data: k-means on user statistics
    submodels: tuple[ModelConfig, ...] = Field(default_factory=_default_submodels, min_length=1, strict=False)
    server_fraction: float = Field(0.1, gt=0, lt=1)  # training rows the server holds for the over-arch
    server_rows: Literal["exclusive", "shared"] = "exclusive"  # exclusive: removed from clients
    over_arch: tuple[int, ...] = Field((64, 32), strict=False)
    over_epochs: int = Field(30, ge=1)
    over_lr: float = Field(1e-3, gt=0)
    over_batch_size: int = Field(256, ge=1)
    over_validation: float = Field(0.2, ge=0, lt=1)  # of the server rows, held out to pick the over-arch epoch
    baseline: bool = True  # also train the smallest sub-model on all clients (same client budget)

    @field_validator("over_arch")
    @classmethod
    def _positive(cls, v):
        if any(h < 1 for h in v):
            raise ValueError(f"layer sizes must be positive, got {list(v)}")
        return v


class AsyncConfig(StrictModel):
    """FedBuff (``mode: fedbuff``): a server step after every ``buffer_size`` updates; ``rounds``
    counts server steps."""

    buffer_size: int = Field(10, ge=1)
    concurrency: int = Field(50, ge=1)  # clients training at once
    staleness: Literal["polynomial", "constant", "threshold"] = "polynomial"
    staleness_exponent: float = Field(0.5, ge=0)  # polynomial: weight 1/(1+s)^exponent
    max_staleness: int = Field(20, ge=0)  # threshold: staler updates are discarded

    @model_validator(mode="after")
    def _concurrency(self):
        if self.concurrency < self.buffer_size:
            raise ValueError(f"concurrency ({self.concurrency}) must be at least buffer_size ({self.buffer_size})")
        return self


class FairnessConfig(StrictModel):
    """RF^2 (``mode: fairness``): per-tier AUC change of each optimization against plain sync FedAvg,
    under the configured tier assignment and (``compare_random``) under random tiers."""

    optimizations: tuple[Literal["deadline", "over_selection", "fel"], ...] = Field(OPTIMIZATIONS, strict=False)
    deadline_quantile: float = Field(0.7, gt=0, lt=1)  # deadline = this quantile of clients' round times
    over_selection: float = Field(0.3, gt=0)
    compare_random: bool = True


class CompressionConfig(StrictModel):
    """Upload (and optionally download) compression (``fedrec.pipeline.compress``): PowerSGD of
    rank ``rank``, top-k keeping ``fraction`` of each tensor's entries, or int8/fp16 row-wise
    quantization; ``error_feedback`` keeps what was dropped for the client's next upload.
    ``downlink: same`` sends each client the model's change since the version it holds, encoded
    the same way (``fedrec.pipeline.downlink``; needs ``client.sparse_downloads``). In gossip mode
    the section compresses the update messages a trained node sends its neighbours (the exchange's
    own messages are ``gossip.compression``'s); there is no download. ``precision: fp16`` sends
    PowerSGD's factors as float16 (half the bytes; error feedback keeps the rounding)."""

    method: Literal["none", "powersgd", "topk", "int8", "fp16"] = "none"
    rank: int = Field(2, ge=1)
    fraction: float = Field(0.01, gt=0, le=1)
    precision: Literal["fp32", "fp16"] = "fp32"  # powersgd: the factors' float format on the wire
    error_feedback: bool = True
    apply_to: Literal["dense", "embeddings", "all"] = "all"
    downlink: Literal["none", "same"] = "none"

    @model_validator(mode="after")
    def _precision_for_powersgd(self):
        if self.precision != "fp32" and self.method != "powersgd":
            raise ConfigError("compression.precision", f"sets PowerSGD's factors' format; method {self.method!r} "
                              "has its own (use method fp16 for float16 values)")
        return self


class GossipCompressionConfig(StrictModel):
    """How gossip messages are compressed (CHOCO-SGD: any codec; PowerGossip: its rank)."""

    method: Literal["none", "powersgd", "topk", "int8", "fp16"] = "none"
    rank: int = Field(1, ge=1)
    fraction: float = Field(0.01, gt=0, le=1)
    apply_to: Literal["dense", "embeddings", "all"] = "all"


class GossipConfig(StrictModel):
    """Decentralized training (``mode: gossip``, ``fedrec.algorithms.gossip``): every client is a
    node with its own model; each round ``clients_per_round`` nodes train locally, then every node
    exchanges (compressed) messages with its neighbours and mixes."""

    algorithm: Literal["dpsgd", "choco", "powergossip"] = "choco"
    topology: Literal["ring", "torus", "exponential", "complete", "social"] = "ring"
    graph: str | None = None  # social: the friendship file (default: the one beside data.path)
    weights: Literal["metropolis", "uniform"] = "metropolis"
    consensus_lr: float = Field(1.0, gt=0, le=1)  # CHOCO's gamma, PowerGossip's step
    compression: GossipCompressionConfig = Field(default_factory=GossipCompressionConfig)
    node_eval_rows: int | None = Field(None, ge=1)  # node AUCs on this many test rows (default: all)

    @model_validator(mode="after")
    def _algorithm_compression(self):
        method = self.compression.method
        if self.algorithm == "dpsgd" and method != "none":
            raise ConfigError("gossip.compression.method", "D-PSGD exchanges whole models; use algorithm choco to "
                              f"compress messages (got {method!r})")
        if self.algorithm == "powergossip" and method != "powersgd":
            raise ConfigError("gossip.compression.method", "PowerGossip sends rank-r power-iteration factors: "
                              f"set it to powersgd (got {method!r})")
        if self.topology != "social" and self.graph is not None:
            raise ConfigError("gossip.graph", f"a graph file is only read for topology social, not {self.topology!r}")
        return self


class DataConfig(StrictModel):
    path: str = "ml-100k"  # resolved under $FEDREC_DATA when not found as given
    format: str = "movielens"
    columns: str | None = None
    split: Literal["temporal", "random", "user_random"] = "temporal"  # user_random: per user, for logs without times
    validation_fraction: float = Field(0.1, ge=0, lt=1)  # per user, just before the test rows
    test_fraction: float = Field(0.2, gt=0, lt=1)
    label_threshold: float = 4.0  # label = rating >= threshold
    # Implicit feedback (e.g. listening counts): every interaction is a positive and this many
    # negatives per interaction are sampled from the items the user never interacted with.
    negatives: int = Field(0, ge=0)
    # ml100k-fed: no user embedding (a user's own vector never leaves their device in practice)
    features: StrTuple = Field(("item", "occupation", "gender", "age_bucket"), min_length=1)
    partition: Literal["natural", "dirichlet", "quantity"] = "natural"
    num_clients: int | None = Field(None, ge=1)  # dirichlet / quantity partitions only
    alpha: float = Field(0.5, gt=0)

    @field_validator("test_fraction")
    @classmethod
    def _fractions(cls, v, info: ValidationInfo):
        if v + info.data.get("validation_fraction", 0.0) >= 1:
            raise ValueError(f"validation_fraction + test_fraction must be below 1, got {v} + {info.data['validation_fraction']}")
        return v

    @field_validator("num_clients")
    @classmethod
    def _num_clients(cls, v, info: ValidationInfo):
        partition = info.data.get("partition", "natural")
        if partition == "natural" and v is not None:
            raise ValueError("only for the dirichlet and quantity partitions (natural: one client per user)")
        return v

    @model_validator(mode="after")
    def _needs_num_clients(self):
        if self.partition != "natural" and self.num_clients is None:
            raise ConfigError("data.num_clients", f"partition {self.partition!r} needs num_clients")
        return self


class ClientStateConfig(StrictModel):
    """Where each actor keeps its clients' device state (private rows): in memory up to
    ``max_memory_mb`` per actor, memory-mapped files under ``spill_dir`` (default: the temp folder)
    beyond."""

    max_memory_mb: float = Field(1024.0, ge=0)
    spill_dir: str | None = None


class FederatedConfig(StrictModel):
    mode: Mode = "sync"  # sync FedAvg-family rounds, fel ensembles, fedbuff async, fairness (RF^2)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    client: ClientTrainConfig = Field(default_factory=ClientTrainConfig)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    clock: ClockConfig = Field(default_factory=ClockConfig)
    client_state: ClientStateConfig = Field(default_factory=ClientStateConfig)
    tiers: TierSpec = Field(default_factory=TierSpec.default)
    rounds: int = Field(30, ge=1)
    clients_per_round: int = Field(50, ge=1)
    sampling: Sampling = "uniform"
    tier_assignment: Literal["random", "correlated"] = "random"
    tier_alpha: float = Field(0.5, gt=0)  # correlated assignment strength (small = strong)
    tier_statistic: Literal["rows", "inverse_rows"] = "rows"  # correlated: more data on faster tiers, or the reverse
    deadline: float | None = Field(None, gt=0)  # simulated seconds; later clients are dropped
    over_selection: float = Field(0.0, ge=0)  # select (1 + x) * clients_per_round, keep the first finishers
    num_actors: int | None = Field(None, ge=1)  # default: one per CPU Ray sees
    actor_num_cpus: float = Field(1.0, gt=0)
    actor_num_gpus: float = Field(0.0, ge=0)
    eval_every: int = Field(5, ge=1)
    # The final evaluation's HR@10 and nDCG@10 over the whole catalogue (one client per user): every
    # user scores every item, ~2 s on ML-100K on 2 cores. Off: the final evaluation is AUC and
    # log loss only, like every other one.
    eval_ranking: bool = True
    seed: int = Field(0, ge=0)
    checkpoint_dir: str | None = None
    checkpoint_every: int = Field(0, ge=0)  # 0: no checkpoints
    target_auc: float | None = Field(None, gt=0, lt=1)  # report simulated seconds and bytes to first reach it (test AUC)
    plot: str | None = None  # PNG of AUC vs round and vs simulated time
    tensorboard: str | None = None  # folder for TensorBoard event files (per-round metrics)
    ensemble: EnsembleConfig = Field(default_factory=EnsembleConfig)
    async_: AsyncConfig = Field(default_factory=AsyncConfig, alias="async")
    fairness: FairnessConfig = Field(default_factory=FairnessConfig)
    attack: AttackConfig = Field(default_factory=AttackConfig)
    aggregator: AggregatorConfig = Field(default_factory=AggregatorConfig)
    privacy: PrivacyConfig | None = None  # user-level DP-FedAvg; the result gains epsilon and delta
    secure_aggregation: SecureAggregationConfig = Field(default_factory=SecureAggregationConfig)
    compression: CompressionConfig = Field(default_factory=CompressionConfig)
    gossip: GossipConfig = Field(default_factory=GossipConfig)
    energy: EnergyConfig = Field(default_factory=EnergyConfig)  # every mode: grid intensity, server and network power
    selection: SelectionConfig = Field(default_factory=SelectionConfig)  # sync: random (baseline), oort, autofl

    @field_validator("tiers", mode="before")
    @classmethod
    def _tiers(cls, value: Any, info: ValidationInfo):
        """A list of tiers inline, or the path of a tier-spec YAML (relative to the config file)."""
        if isinstance(value, str):
            path = Path(value)
            base = (info.context or {}).get("base_dir")
            if base is not None and not path.is_absolute() and not path.exists():
                path = Path(base) / path
            return TierSpec.load(path)
        if isinstance(value, list):
            return {"tiers": value}
        return value

    @model_validator(mode="after")
    def _sections_belong_to_mode(self):
        for section, modes in MODE_SECTIONS.items():
            if section in self.model_fields_set and self.mode not in modes:
                name = "async" if section == "async_" else section
                raise ConfigError(name, f"this section is only for mode {' or '.join(modes)}, not {self.mode!r}")
        features = self.model.features or self.data.features
        unknown = [f for f in self.model.private if f not in features]
        if unknown:
            raise ConfigError("model.private", f"{unknown} are not model features {list(features)}")
        for field in ("features", "agreement", "promotion_guard"):  # the aggregator's rows, by feature
            unknown = [f for f in getattr(self.aggregator, field) if f not in features and not f.endswith(".weight")]
            if unknown:
                raise ConfigError(f"aggregator.{field}", f"{unknown} are not model features {list(features)} "
                                  "(or embedding table parameter names)")
        if self.model.private and self.mode in ("fel", "gossip"):
            why = {"fel": "FEL's server-side over-arch cannot read private tables",
                   "gossip": "gossip nodes exchange whole models, private tables included"}[self.mode]
            raise ConfigError("model.private", f"{why}; use mode sync or fedbuff")
        for refit in ("refit_private_epochs", "eval_refit_private_epochs"):
            if getattr(self.client, refit) and not self.model.private:
                raise ConfigError(f"client.{refit}", "refits the model's private tables, and there are none: "
                                  "set model.private (e.g. [user]) or leave it 0")
        if self.model.private and self.compression.downlink == "same":
            raise ConfigError("compression.downlink", "compressed downloads keep a copy of the whole model per client, "
                              "private tables included; use downlink none with model.private")
        if self.compression.method != "none" and self.secure_aggregation.enabled:
            raise ConfigError("compression.method", "secure aggregation masks the updates' plain values; compressed "
                              "updates cannot be summed under the masks; use method none")
        _trust_sections_compatible(self)
        e, k = self.ensemble, len(self.tiers.tiers)
        if self.mode in ("fel", "fairness") and e.clustering == "tier" and len(e.submodels) != k:
            raise ConfigError("ensemble.submodels", f"tier clustering needs one sub-model per tier ({k}), got {len(e.submodels)}")
        if self.mode == "gossip" and self.strategy.row_mean != "touchers":
            raise ConfigError("strategy.row_mean", "gossip nodes average their neighbours' updates per row over the "
                              "neighbours that touched it (fedrec/gossip/updates.py), with no server strategy: "
                              "use touchers")
        if self.mode == "gossip" and self.compression.downlink != "none":
            raise ConfigError("compression.downlink", "gossip nodes train from their own models and download nothing: "
                              "use downlink none")
        if self.compression.downlink == "same" and not (self.client.sparse_downloads and self.client.sparse_updates):
            raise ConfigError("compression.downlink", "compressed downloads carry the rows a client trains on: "
                              "set client.sparse_downloads and client.sparse_updates to true")
        needs_own_start = self.mode == "gossip" or self.compression.downlink == "same"
        if needs_own_start and not self.client.batched:
            raise ConfigError("client.batched", "gossip and compressed downloads train every client from its own "
                              "weights, which the batched trainer does: set client.batched: true")
        return self

    def with_(self, **changes: Any) -> FederatedConfig:
        """A copy with top-level fields or dotted section fields changed, validated again
        (``cfg.with_(rounds=3, **{"data.path": p})``). Changing ``mode`` drops the sections of the
        old mode that the new one does not take."""
        doc = self.model_dump(by_alias=True, mode="json", exclude_unset=False)
        doc["tiers"] = self.tiers.to_list()
        given = {("async" if f == "async_" else f) for f in self.model_fields_set}
        for key, value in changes.items():
            target = doc
            *parents, leaf = key.split(".")
            for i, p in enumerate(parents):
                if not isinstance(target.get(p), dict):
                    raise ConfigError(key, f"'{'.'.join(parents[: i + 1])}' is not a section of this config")
                target = target[p]
            target[leaf] = value
            given.add(parents[0] if parents else leaf)
        mode = doc.get("mode", self.mode)
        for section, modes in MODE_SECTIONS.items():
            name = "async" if section == "async_" else section
            if mode not in modes or name not in given:
                doc.pop(name, None)
        return config_from_dict(_jsonable(doc))


def _trust_sections_compatible(cfg: FederatedConfig) -> None:
    """Combinations of attack, aggregator, privacy and secure aggregation that cannot work together."""
    if cfg.aggregator.robust and cfg.privacy is not None:
        raise ConfigError("aggregator.name", f"{cfg.aggregator.name!r} with privacy: DP-FedAvg's noise is calibrated "
                          "to the sum of clipped updates; use aggregator mean")
    if cfg.aggregator.robust and cfg.secure_aggregation.enabled:
        raise ConfigError("aggregator.name", f"{cfg.aggregator.name!r} needs the individual updates, which secure "
                          "aggregation hides; use aggregator mean")
    p = cfg.privacy
    if p is not None and p.adaptive_clipping and cfg.secure_aggregation.enabled:
        raise ConfigError("privacy.adaptive_clipping", "adaptive clipping runs on the server's view of each update, "
                          "which secure aggregation hides; use a fixed clip_norm")
    if p is not None and p.adaptive_clipping and p.local_noise > 0:
        raise ConfigError("privacy.local_noise", "local noise follows client-side clipping; not with adaptive_clipping")


def _jsonable(doc: Any) -> Any:
    return json.loads(json.dumps(doc))


def config_from_dict(doc: Any, base_dir: Path | None = None) -> FederatedConfig:
    """A run config from plain data (as YAML gives it); ConfigError names the first bad field."""
    if isinstance(doc, dict) and "async_" in doc and "async" not in doc:
        doc = {("async" if k == "async_" else k): v for k, v in doc.items()}
    return validate(FederatedConfig, doc, context={"base_dir": base_dir})


def load_config(path: str | Path, **overrides: Any) -> FederatedConfig:
    """Read and validate a YAML run config. ``overrides`` (None values ignored) replace top-level
    fields, e.g. ``load_config(p, rounds=3)``; dotted names reach into sections."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("--config", f"config file {p} not found")
    try:
        doc = yaml.safe_load(p.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError("--config", f"{p} is not valid YAML: {str(exc).splitlines()[0]}") from None
    cfg = config_from_dict(doc, p.parent)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return cfg.with_(**overrides) if overrides else cfg


def config_to_dict(cfg: FederatedConfig) -> dict:
    """Plain data (JSON/YAML types) that ``config_from_dict`` reads back to an equal config."""
    out = cfg.model_dump(by_alias=True, mode="json")
    out["tiers"] = cfg.tiers.to_list()
    for section, modes in MODE_SECTIONS.items():
        if cfg.mode not in modes:
            out.pop("async" if section == "async_" else section)
    return out
