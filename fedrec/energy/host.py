"""Energy of the machine running the simulation, through codecarbon's offline tracker.

codecarbon reads hardware power counters where the machine has them (Intel RAPL, Apple
powermetrics, Windows EMI, NVIDIA NVML) and otherwise falls back to an estimate (the CPU's TDP x its
load, RAM by size); ``source`` says which it used: ``measured`` or ``estimated``. It measures the
whole machine (``tracking_mode="machine"``: the Ray actors are other processes), so other work on
the same machine is counted too.

One tracker per process, started on first use and read per round as a difference: starting one
costs seconds (hardware detection), which every run in a test session or sweep would otherwise pay.
The import is lazy so ``fedrec --help`` does not pay for it.
"""

from __future__ import annotations

import atexit
import logging
import threading

JOULES_PER_KWH = 3.6e6
MEASURED_CPU_MODES = ("intel_rapl", "intel_power_gadget", "windows_emi", "apple_powermetrics")


class HostMeter:
    """Cumulative joules of this machine since the meter started (``joules()``), and ``source``."""

    _shared: HostMeter | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        from codecarbon import OfflineEmissionsTracker

        logging.getLogger("codecarbon").setLevel(logging.ERROR)  # its INFO/WARNING lines are not ours to print

        # measure_power_secs: the background sampler barely runs; each round measures explicitly.
        self._tracker = OfflineEmissionsTracker(country_iso_code="USA", save_to_file=False, log_level="error",
                                                measure_power_secs=3600, tracking_mode="machine",
                                                allow_multiple_runs=True)
        self._tracker.start()
        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        hardware = getattr(self._tracker, "_hardware", [])
        measured = any(getattr(h, "_mode", None) in MEASURED_CPU_MODES or type(h).__name__ == "GPU" for h in hardware)
        self.source = "measured" if measured else "estimated"
        atexit.register(self._stop)

    @classmethod
    def shared(cls) -> HostMeter | None:
        """The process's meter; None where codecarbon cannot start here (the run then reports
        ``estimated`` with no host joules, rather than failing)."""
        with cls._lock:
            if cls._shared is None:
                try:
                    cls._shared = cls()
                except Exception as exc:  # noqa: BLE001  (any failure to start a tracker only loses the host figure)
                    logging.getLogger(__name__).warning("host energy not measured: codecarbon did not start (%s)", exc)
                    return None
            return cls._shared

    def joules(self) -> float:
        with self._lock:
            self._tracker._measure_power_and_energy()  # codecarbon's own sample-and-integrate step, on demand
            return float(self._tracker._total_energy.kWh) * JOULES_PER_KWH

    def _stop(self) -> None:
        try:
            self._tracker.stop()
        except Exception:  # noqa: BLE001  (interpreter shutdown: nothing left to report to)
            pass
