"""The federated runtime: the client pool (actors, data, models), one run's state and record, the
round loop that drives runs, checkpoints, results and tracking.

Exports resolve on first use, so a client actor importing ``fedrec.runtime.actor`` loads only what
it runs (torch, not the driver's readers, metrics or TorchRec).
"""

from fedrec.lazy import lazy_exports

_LAZY = {
    "Checkpointer": "fedrec.runtime.checkpoint", "ClientPool": "fedrec.runtime.pool",
    "FederatedData": "fedrec.runtime.data", "FederatedResult": "fedrec.runtime.result",
    "FederatedRun": "fedrec.runtime.run", "ModelDiverged": "fedrec.runtime.run", "RoundLoop": "fedrec.runtime.loop", "RoundPlan": "fedrec.runtime.run",
    "Submission": "fedrec.runtime.run", "load_federated_data": "fedrec.runtime.data",
    "plot_history": "fedrec.runtime.result",
}

__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = sorted(_LAZY)
