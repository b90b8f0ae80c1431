"""The simulated clock: how long a client's round would take on its device.

round time = local steps x step cost / tier speed + bytes down / down bandwidth + bytes up / up
bandwidth. Times are simulated seconds, independent of how fast this machine trains; the run
uses them for deadlines, over-selection and asynchronous ordering, and reports them beside the
wall time.
"""

from __future__ import annotations

from pydantic import Field

from fedrec.client.tiers import Tier
from fedrec.configbase import StrictModel


class ClockConfig(StrictModel):
    step_seconds: float = Field(0.05, gt=0)  # one local SGD step on the reference device (speed 1.0)
    server_seconds: float = Field(0.0, ge=0)  # fixed per-round server overhead


def round_seconds(local_steps, bytes_down, bytes_up, speed, down_mbps, up_mbps, clock: ClockConfig):
    """Compute plus transfer time; every argument but ``clock`` may be a numpy array (all clients)."""
    return local_steps * clock.step_seconds / speed + bytes_down * 8 / (down_mbps * 1e6) + bytes_up * 8 / (up_mbps * 1e6)


def client_seconds(tier: Tier, local_steps: int, bytes_down: int, bytes_up: int, clock: ClockConfig) -> float:
    return float(round_seconds(local_steps, bytes_down, bytes_up, tier.speed, tier.down_mbps, tier.up_mbps, clock))
