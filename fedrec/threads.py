"""One intra-op thread for driver-side tensor work that runs beside the client actors.

The actors pin themselves to one thread each (``ClientActorImpl``); the driver decoding uploads,
mixing gossip nodes or scoring node models shares the same cores. With torch's default of one
OpenMP thread per core, a busy machine turns every small kernel's barrier into a spin-wait: on
two loaded cores a PowerGossip step on a 12-node toy graph took 0.37 s with two threads and
2 ms with one. ``single_threaded`` runs a function with one thread and restores the setting.
"""

from __future__ import annotations

import functools

import torch


def single_threaded(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        before = torch.get_num_threads()
        if before == 1:
            return fn(*args, **kwargs)
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(before)

    return wrapper
