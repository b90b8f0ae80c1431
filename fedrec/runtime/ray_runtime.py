"""Starting or joining Ray: a local instance on demand, or the cluster named by RAY_ADDRESS
(``ray job submit`` sets it), so the same code runs on a laptop and on a cluster."""

from __future__ import annotations

import logging
import os

import ray

_started_here = False  # this process started a local instance (not joined a cluster)


def ensure_ray(num_cpus: int | None = None) -> None:
    """Join or start Ray, and make the driver's torch single-threaded.

    The driver's tensor work per round is many small ops (aggregating row updates, applying the
    server step) on the same cores the actors train on; with torch's default intra-op thread pool
    those ops spin against the actors and an 8 ms ``index_add_`` appears where 0.1 ms is due
    (measured: 10 ml100k-fed rounds 4.5 s -> 1.6 s on 2 cores).
    """
    import torch

    torch.set_num_threads(1)
    start_ray(num_cpus)


def start_ray(num_cpus: int | None = None) -> None:
    """Join the cluster named by RAY_ADDRESS, or start a local Ray; nothing if Ray is up."""
    if ray.is_initialized():
        return
    # Ray's start-up banners (token authentication, signal handlers when started off the main
    # thread) are noise on every run; FEDREC_RAY_LOGS=1 (or `fedrec -v`) shows them again.
    quiet = os.environ.get("FEDREC_RAY_LOGS", "") not in ("1", "true", "yes")
    logging.getLogger("ray").setLevel(logging.ERROR if quiet else logging.INFO)
    if os.environ.get("RAY_ADDRESS"):  # `ray job submit` sets it; RAY_ADDRESS=auto joins a `ray start` cluster
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False, configure_logging=False)
        return
    # address="local": a new instance. Without it ray.init joins the last cluster `ray start` left
    # recorded under /tmp/ray, even a stopped one (a run then hangs on its dead GCS); joining a running
    # Ray is asked for explicitly, with RAY_ADDRESS (=auto for the one `ray start` made).
    for attempt in range(3):
        try:
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
            global _started_here
            _started_here = True
            return
        except Exception as exc:  # Ray gives its raylet a fixed 30 s to come up; a loaded machine can miss it
            if "timed out during startup" not in str(exc) or attempt == 2:
                raise
            logging.getLogger(__name__).warning("Ray did not start in time (a busy machine?); trying again")
            ray.shutdown()


def ray_cpus() -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def hand_local_ray_to_exit() -> bool:
    """For a process about to exit: leave the local Ray it started to ``kill_local_ray`` instead of
    ``ray.shutdown``'s exit handler. True if there is one.

    ``ray.shutdown`` stops Ray's processes one after another, giving each time to exit gracefully,
    and from the exit handler first sleeps 0.5 s for worker logs (which fedrec does not forward):
    1.4-2 s on 2 cores after the last line is printed. Nothing of a local instance outlives the
    process that started it, so there is nothing to be graceful for. A cluster joined through
    RAY_ADDRESS is not ours: its exit handler (which only disconnects) stays.
    """
    if not (_started_here and ray.is_initialized()):
        return False
    import atexit

    atexit.unregister(ray.shutdown)
    return True


def kill_local_ray() -> None:
    """SIGKILL every process this one started (Ray's GCS, raylet, agents and, through the raylet,
    the workers), all at once and without waiting: the last step of a process that then exits."""
    import psutil

    for proc in psutil.Process().children(recursive=True):
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
