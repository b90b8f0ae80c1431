"""Errors the sharding planner raises; the CLI prints each as one line (exit status 2)."""

from __future__ import annotations

from data_pipeline.errors import FedrecError


class WorkloadError(FedrecError):
    """A workload that is malformed: names the table and what is wrong with it."""

    def __init__(self, table: str | None, message: str) -> None:
        self.table = table
        super().__init__(f"workload table '{table}': {message}" if table is not None else f"workload: {message}")


class InfeasiblePlanError(FedrecError):
    """No plan satisfies the constraints: names the table (when one is to blame) and the constraint."""
