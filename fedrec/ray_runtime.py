"""Starting or joining Ray: a local instance on demand, or the cluster named by RAY_ADDRESS
(``ray job submit`` sets it), so the same code runs on a laptop and on a cluster."""

from __future__ import annotations

import logging
import os

import ray


def ensure_ray(num_cpus: int | None = None) -> None:
    if ray.is_initialized():
        return
    logging.getLogger("ray").setLevel(logging.WARNING)
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)


def ray_cpus() -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))
