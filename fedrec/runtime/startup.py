"""A run's start-up with its fixed costs side by side instead of one after another.

What a whole ``fedrec train`` waits for before its first round, measured on 2 cores
(``scripts/profile_startup.py``): ~5 s starting a local Ray (mostly waiting for its processes),
~3-5 s importing torch and the data readers (and TorchRec, ~4 CPU-seconds more, for a model other
than the DLRM; reading and splitting ML-100K itself is ~0.3 s), ~3 s of each actor importing torch,
~1 s of the host energy meter detecting hardware. ``started_pool`` starts Ray on the calling
thread while a second thread imports and loads, then starts the actors, which boot while the
loading finishes.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from fedrec.runtime.ray_runtime import start_ray


def load_for_run(cfg):
    """The run's ``FederatedData``, with the imports the run needs warmed on the same thread and
    the host energy meter (when the config measures it) started on another."""
    if cfg.energy.measure_host:
        # Its import and hardware detection (~2 s, half of it waiting) on a thread of its own; the
        # round loop's HostMeter.shared() waits for it.
        threading.Thread(target=_start_host_meter, name="fedrec-meter", daemon=True).start()
    from fedrec.runtime.data import load_federated_data

    data = load_federated_data(cfg)
    _warm_imports(cfg)
    return data


def _start_host_meter() -> None:
    from fedrec.energy.host import HostMeter

    HostMeter.shared()


@contextmanager
def started_pool(cfg, data=None):
    """``(pool, data)``: a started ``ClientPool`` for ``cfg`` and the run's data (``data`` as given,
    else loaded), stopped at the end. Ray starts on this thread (its driver connection must be made
    on the main thread) while another imports torch and loads; the actors are created as soon as
    Ray is up and boot while the loading finishes."""
    with ThreadPoolExecutor(1, thread_name_prefix="fedrec-load") as ex:
        loading = ex.submit(load_for_run, cfg) if data is None else ex.submit(_warm_imports, cfg)
        start_ray()
        from fedrec.runtime.pool import ClientPool  # imports torch: by now mostly done on the other thread

        pool = ClientPool.from_config(cfg)
        try:
            pool.start()
            loaded = loading.result()
        except BaseException:
            pool.stop()
            raise
    try:
        yield pool, (data if data is not None else loaded)
    finally:
        pool.stop()


def _warm_imports(cfg) -> None:
    """Import what the run will: its mode's runner (torch, the round loop) and, for a model the
    driver builds as a TorchRec module, TorchRec (a DLRM starts from ``dlrm_initial_state``)."""
    from fedrec.model import is_plain_dlrm

    if not is_plain_dlrm(cfg.model):
        import torchrec.models.dlrm  # noqa: F401

    from fedrec.algorithms import runner_of

    runner_of(cfg.mode)
