"""Names and defaults the CLI needs to build its parser, without importing the samplers and models
(which import torch: seconds per process, which ``fedrec --help`` must not pay). The registries in
``sampling.samplers`` and ``sampling.models`` are checked against these names by the tests."""

SAMPLER_NAMES = (
    "random", "stratified", "temporal", "user", "head-user", "svp-cf", "svp-cf-prop", "centrality", "random-walk",
    "forest-fire",
)  # fmt: skip
DISTILL = "distill-cf"
METHODS = ("auto", *SAMPLER_NAMES, DISTILL)
DEFAULT_MODELS = ("popularity", "item-knn", "ease", "mf", "neumf", "infinity-ae")
DEFAULT_RATES = (0.1, 0.2, 0.4, 0.6, 0.8)
SPLITS = ("auto", "temporal", "random")
