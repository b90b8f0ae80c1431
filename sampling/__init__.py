"""Dataset sampling that preserves model rankings: SVP-CF samplers, a CPU model zoo, the
Kendall-tau harness and Data-Genie; and Distill-CF data summaries.

``sample(data, rate, method)`` keeps a fraction of an interaction log; ``evaluate(data, ...)``
measures how well each sampler preserves the ranking of the zoo's models (Sachdeva, Wu & McAuley,
"On Sampling Collaborative Filtering Datasets", WSDM 2022).

The public names are loaded on first use (PEP 562): the samplers and models import torch, which
``fedrec --help`` (it only needs ``sampling.cli`` and ``sampling.names``) must not pay for.
"""

from importlib import import_module

_WHERE = {
    "METHODS": "sampling.names", "RatePlan": "sampling.api", "evaluate": "sampling.api", "load": "sampling.api",
    "sample": "sampling.api", "smallest_rate": "sampling.api", "write_sample": "sampling.api",
    "DistillCF": "sampling.distill", "DataGenie": "sampling.genie", "meta_features": "sampling.genie",
    "DEFAULT_MODELS": "sampling.names", "DEFAULT_RATES": "sampling.names", "METRICS": "sampling.metrics",
    "kendall_tau": "sampling.metrics", "MODEL_NAMES": "sampling.models", "ZOO": "sampling.models",
    "make_model": "sampling.models", "EvaluationResult": "sampling.results", "SampleResult": "sampling.results",
    "SAMPLER_NAMES": "sampling.names", "SAMPLERS": "sampling.samplers", "Sampler": "sampling.samplers",
    "make_sampler": "sampling.samplers",
}  # fmt: skip
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'sampling' has no attribute {name!r}")
    value = getattr(import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
