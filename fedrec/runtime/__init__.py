"""The federated runtime: the client pool (actors, data, models), one run's state and record, the
round loop that drives runs, checkpoints, results and tracking."""

from fedrec.runtime.checkpoint import Checkpointer
from fedrec.runtime.data import FederatedData, load_federated_data
from fedrec.runtime.loop import RoundLoop
from fedrec.runtime.pool import ClientPool
from fedrec.runtime.result import FederatedResult, plot_history
from fedrec.runtime.run import FederatedRun, RoundPlan, Submission

__all__ = [
    "Checkpointer", "ClientPool", "FederatedData", "FederatedResult", "FederatedRun", "RoundLoop", "RoundPlan",
    "Submission", "load_federated_data", "plot_history",
]
