"""The simulated clock: how long a client's round would take on its device.

round time = local steps x step cost / tier speed + bytes down / down bandwidth + bytes up / up
bandwidth. Times are simulated seconds, independent of how fast this machine trains; the server
uses them for deadlines, over-selection and asynchronous ordering, and reports them beside the
wall time.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedrec.client.tiers import Tier


@dataclass(frozen=True)
class ClockConfig:
    step_seconds: float = 0.05  # one local SGD step on the reference device (speed 1.0)
    server_seconds: float = 0.0  # fixed per-round server overhead


def client_seconds(tier: Tier, local_steps: int, bytes_down: int, bytes_up: int, clock: ClockConfig) -> float:
    compute = local_steps * clock.step_seconds / tier.speed
    transfer = bytes_down * 8 / (tier.down_mbps * 1e6) + bytes_up * 8 / (tier.up_mbps * 1e6)
    return compute + transfer
