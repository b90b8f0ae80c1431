"""Samplers over canonical interactions, one family a file; ``make_sampler(name, seed)`` builds one."""

from __future__ import annotations

from sampling._validate import check_choice
from sampling.samplers.base import Sampler
from sampling.samplers.graph import Centrality, ForestFire, RandomWalk
from sampling.samplers.interactions import RandomInteractions, StratifiedInteractions, TemporalInteractions
from sampling.samplers.svp import SVPCF, SVPCFProp
from sampling.samplers.users import HeadUsers, RandomUsers

SAMPLERS: dict[str, type[Sampler]] = {
    cls.name: cls
    for cls in (
        RandomInteractions,
        StratifiedInteractions,
        TemporalInteractions,
        RandomUsers,
        HeadUsers,
        SVPCF,
        SVPCFProp,
        Centrality,
        RandomWalk,
        ForestFire,
    )
}
SAMPLER_NAMES = tuple(SAMPLERS)


def make_sampler(name: str, seed: int = 0, **params) -> Sampler:
    return SAMPLERS[check_choice(name, SAMPLER_NAMES, "method")](seed=seed, **params)


__all__ = [
    "SAMPLERS",
    "SAMPLER_NAMES",
    "SVPCF",
    "Centrality",
    "ForestFire",
    "HeadUsers",
    "RandomInteractions",
    "RandomUsers",
    "RandomWalk",
    "SVPCFProp",
    "Sampler",
    "StratifiedInteractions",
    "TemporalInteractions",
    "make_sampler",
]
