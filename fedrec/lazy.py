"""Package exports that import their module on first use (PEP 562).

A run config names sections whose packages (strategies, pipeline, privacy, secure aggregation)
implement their steps with torch. Loading and validating a config must not import torch: the CLI
imports it on a thread while Ray starts, and a bad config should fail in a fraction of a second.
So those packages' ``__init__`` resolve their exports lazily, through this one helper.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, where: dict[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package`` that imports ``where[name]`` (a module path
    relative to ``package``, or absolute when it starts with ``fedrec``) the first time ``name``
    is asked for."""

    def __getattr__(name: str):
        if name in where:
            module = where[name]
            return getattr(importlib.import_module(module if module.startswith("fedrec") else f"{package}.{module}"),
                           name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


def exports_of(modules: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """``{module: (name, ...)}`` inverted to ``{name: module}`` for ``lazy_exports``."""
    return {name: module for module, names in modules.items() for name in names}
