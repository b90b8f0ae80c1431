"""The ``aggregator`` section of a run config: which rule turns the round's updates into one."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fedrec.configbase import StrictModel

Robust = Literal["median", "trimmed_mean", "krum", "multi_krum", "centered_clipping"]


class AggregatorConfig(StrictModel):
    name: Literal["mean", "median", "trimmed_mean", "krum", "multi_krum", "centered_clipping", "bucketing",
                  "foolsgold"] = "mean"
    trim_fraction: float = Field(0.2, ge=0, lt=0.5)  # trimmed_mean: dropped at each end, per coordinate
    rows: Literal["touched", "all"] = "touched"  # median, trimmed_mean: a row over its touchers, or all (zeros)
    byzantine_fraction: float = Field(0.2, ge=0, lt=0.5)  # krum, multi_krum: f = floor(this * clients)
    keep: int | None = Field(None, ge=1)  # multi_krum: clients kept (default clients - f)
    clip_radius: float = Field(1.0, gt=0)  # centered_clipping: tau
    clip_iterations: int = Field(1, ge=1)  # centered_clipping
    bucket_size: int = Field(2, ge=1)  # bucketing
    inner: Robust = "centered_clipping"  # bucketing: the robust rule applied to the bucket means
    history: bool = True  # foolsgold: compare sums of uploads so far, over every client seen (False: this round)
    norm_bound: Literal["median", "tensor", "none"] = "median"  # foolsgold: uploads (each tensor) to <= the median norm
    # foolsgold: the median norm the bound takes is over every upload of the round, or over the clients
    # it trusts (weight > 0) only, so that attackers cannot move it
    bound_among: Literal["all", "trusted"] = "all"
    # foolsgold, norm_bound tensor: a row's bound is the median over every uploaded row, or over the
    # clients of each one's median row norm (a client that uploads more rows has no more say)
    row_median: Literal["rows", "clients"] = "rows"
    kappa: float = Field(1.0, gt=0)  # foolsgold: the logit's confidence
    features: list[str] = []  # foolsgold: compare only these features' embedding rows (empty: whole uploads)
    # foolsgold: then drop the clients whose rows of these features disagree, over their rounds so far,
    # with the trusted other touchers' (``agreement.py``; empty: no test).
    agreement: list[str] = []
    # foolsgold: score the agreement again this many times in all, each time with only the clients
    # that passed the last one as references (1: the trusted are the references once)
    agreement_passes: int = Field(1, ge=1)
    # foolsgold: each row's cosine counts once (rows) or in proportion to its reference's length
    # (reference: a row many trusted touchers agree on says more than one with a single other toucher)
    agreement_weighting: Literal["rows", "reference"] = "rows"
    # foolsgold: a row's reference also holds the directions kept on it in earlier rounds, their sum
    # discounted by this at each round the row is touched (None: this round's touchers only)
    agreement_memory: float | None = Field(None, ge=0, lt=1)
    # foolsgold: hold still the rows of these features that the trusted push in concert, round after
    # round (mean pairwise cosine, averaged over rounds, above promotion_threshold; ``coordinated.py``).
    promotion_guard: list[str] = []
    promotion_threshold: float = Field(0.5, gt=-1, lt=1)

    @model_validator(mode="after")
    def _foolsgold_fields_only_for_foolsgold(self):
        if self.name != "foolsgold" and (self.features or self.agreement or self.promotion_guard
                                         or self.bound_among != "all" or self.row_median != "rows"):
            raise ValueError("features, agreement, promotion_guard, bound_among and row_median are only for foolsgold")
        return self

    @model_validator(mode="after")
    def _options_need_what_they_modify(self):
        # an option that would silently do nothing is refused
        if not self.agreement and (self.agreement_passes > 1 or self.agreement_weighting != "rows"
                                   or self.agreement_memory is not None):
            raise ValueError("agreement_passes, agreement_weighting and agreement_memory need agreement "
                             "(the features whose rows are scored)")
        if self.row_median != "rows" and self.norm_bound != "tensor":
            raise ValueError("row_median applies to norm_bound: tensor (each embedding row bounded)")
        if self.bound_among != "all" and self.norm_bound == "none":
            raise ValueError("bound_among needs a norm_bound (median or tensor)")
        return self

    @model_validator(mode="after")
    def _keep_only_for_multi_krum(self):
        if self.keep is not None and self.name != "multi_krum" and not (self.name == "bucketing" and self.inner == "multi_krum"):
            raise ValueError("keep is only for multi_krum")
        return self

    @property
    def robust(self) -> bool:
        """Whether the rule needs the individual updates (anything but the weighted mean)."""
        return self.name != "mean"
