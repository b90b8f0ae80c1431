"""The planners' names, apart from the planners so building ``fedrec --help`` imports no scipy."""

PLANNERS = ("recshard", "greedy", "torchrec", "torchrec-best", "size", "lookup", "size-lookup", "random")
