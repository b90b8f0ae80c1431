"""Dataset sampling that preserves model rankings: SVP-CF samplers, a CPU model zoo, the
Kendall-tau harness and Data-Genie.

``sample(data, rate, method)`` keeps a fraction of an interaction log; ``evaluate(data, ...)``
measures how well each sampler preserves the ranking of the zoo's models (Sachdeva, Wu & McAuley,
"On Sampling Collaborative Filtering Datasets", WSDM 2022).
"""

from sampling.api import METHODS, RatePlan, evaluate, load, sample, smallest_rate, write_sample
from sampling.genie import DataGenie, meta_features
from sampling.harness import DEFAULT_MODELS, DEFAULT_RATES
from sampling.metrics import METRICS, kendall_tau
from sampling.models import MODEL_NAMES, ZOO, make_model
from sampling.results import EvaluationResult, SampleResult
from sampling.samplers import SAMPLER_NAMES, SAMPLERS, Sampler, make_sampler

__all__ = [
    "DEFAULT_MODELS", "DEFAULT_RATES", "METHODS", "METRICS", "MODEL_NAMES", "SAMPLERS", "SAMPLER_NAMES", "ZOO",
    "DataGenie", "EvaluationResult", "RatePlan", "SampleResult", "Sampler", "evaluate", "kendall_tau", "load",
    "make_model", "make_sampler", "meta_features", "sample", "smallest_rate", "write_sample",
]  # fmt: skip
