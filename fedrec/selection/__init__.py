"""Client selection (sync mode): which clients take part in a round and on which execution target
each trains. ``random`` is the baseline (the strategy's own sampling); ``oort`` and ``autofl`` learn
from what clients report."""

from __future__ import annotations

from fedrec.selection.autofl import AutoFLPolicy
from fedrec.selection.base import ClientView, Feedback, statistical_utility
from fedrec.selection.config import AutoFLConfig, OortConfig, SelectionConfig
from fedrec.selection.oort import OortPolicy


def make_policy(cfg: SelectionConfig, view: ClientView):
    """The learning policy of ``cfg``; None for ``random`` (the run samples through its strategy)."""
    if cfg.policy == "oort":
        return OortPolicy(cfg.oort, view)
    if cfg.policy == "autofl":
        return AutoFLPolicy(cfg.autofl, view)
    return None


__all__ = ["AutoFLConfig", "AutoFLPolicy", "ClientView", "Feedback", "OortConfig", "OortPolicy", "SelectionConfig",
           "make_policy", "statistical_utility"]
