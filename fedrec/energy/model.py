"""Energy and carbon of a federated run, on the simulated clock.

Per round: each participating client spends ``watts x compute seconds`` on its execution target,
its radio's joules per byte sent and received, and ``idle watts`` while it waits for the round to
end; the server draws ``server_watts`` for the whole simulated round; the network between them
``network_joules_per_byte`` for every byte moved. Carbon follows Sustainable AI (Wu et al., MLSys
2022): operational (energy x grid intensity) plus embodied (manufacturing carbon amortised per
device-hour of use).

The defaults are estimates from published figures, not measurements of any particular device:
- grid 475 gCO2e/kWh: the world-average carbon intensity of electricity (IEA, Global Energy & CO2
  Status Report 2019).
- network 2.16e-4 J/byte = 0.06 kWh/GB: Aslan et al., "Electricity intensity of Internet data
  transmission", J. Industrial Ecology 2018 (their 2015 estimate; it halves about every two years,
  so this is an upper bound today).
- server 300 W: a two-socket rack server near full load (SPECpower_ssj2008 results, 250-350 W).
- server embodied 35 gCO2e/hour: about 1.2 t CO2e manufacturing (Dell PowerEdge R740 product
  carbon footprint) over four years of use.
- a phone (the tier defaults in ``fedrec.client.tiers``): 3 W training (AutoFL, Kim & Wu, MICRO
  2021, measures 1-5 W on phones' CPUs/GPUs), 0.3 W waiting, LTE radio about 5 uJ/byte up and
  2 uJ/byte down (Huang et al., MobiSys 2012: 1-2.5 W at a few Mbit/s), 2 gCO2e/hour embodied
  (about 55 kg manufacturing in phone makers' product environmental reports, over three years).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import Field

from fedrec.configbase import StrictModel

JOULES_PER_KWH = 3.6e6
# Run totals the energy model adds to (``FederatedRun.totals``; checkpointed with them).
ENERGY_TOTALS = ("client_joules", "server_joules", "network_joules", "embodied_gco2e", "host_joules")


class EnergyConfig(StrictModel):
    """The ``energy:`` section (every mode). ``measure_host``: also measure the machine running
    the simulation with codecarbon (``fedrec.energy.host``)."""

    grid_gco2e_per_kwh: float = Field(475.0, ge=0)
    server_watts: float = Field(300.0, ge=0)
    server_embodied_gco2e_per_hour: float = Field(35.0, ge=0)
    network_joules_per_byte: float = Field(2.16e-4, ge=0)
    measure_host: bool = True


@dataclass
class RoundEnergy:
    client_joules: float
    server_joules: float
    network_joules: float
    embodied_gco2e: float

    def add_to(self, totals: dict) -> None:
        for k in ("client_joules", "server_joules", "network_joules", "embodied_gco2e"):
            totals[k] = totals.get(k, 0.0) + float(getattr(self, k))

    def row(self) -> dict:
        return {"energy_joules": self.client_joules + self.server_joules + self.network_joules,
                "client_joules": self.client_joules}


class EnergyModel:
    """The per-tier figures of one run's clients, and the energy of a round from what happened in it."""

    def __init__(self, cfg: EnergyConfig, spec, tiers: np.ndarray) -> None:
        self.cfg = cfg
        self.tiers = tiers
        per_tier = {k: np.array([getattr(t, k) for t in spec.tiers], dtype=np.float64)
                    for k in ("idle_watts", "up_joules_per_byte", "down_joules_per_byte", "embodied_gco2e_per_hour")}
        self.idle_watts = per_tier["idle_watts"]
        self.up_jpb, self.down_jpb = per_tier["up_joules_per_byte"], per_tier["down_joules_per_byte"]
        self.embodied = per_tier["embodied_gco2e_per_hour"]

    def per_client(self, clients: np.ndarray, compute_joules: np.ndarray, busy_seconds: np.ndarray,
                   bytes_up: np.ndarray, bytes_down: np.ndarray, round_seconds: float) -> np.ndarray:
        """Each of ``clients``' joules in a round of ``round_seconds``: its ``compute_joules``, its
        radio's for the bytes it moved, and idle power for the time it was not busy (training and
        transferring, ``busy_seconds``) but waited for the round to end."""
        tier = self.tiers[np.asarray(clients, dtype=np.int64)]
        up, down = np.asarray(bytes_up, dtype=np.float64), np.asarray(bytes_down, dtype=np.float64)
        idle = np.clip(round_seconds - np.asarray(busy_seconds, dtype=np.float64), 0.0, None)
        return (np.asarray(compute_joules, dtype=np.float64) + up * self.up_jpb[tier] + down * self.down_jpb[tier]
                + idle * self.idle_watts[tier])

    def round(self, clients: np.ndarray, compute_joules: np.ndarray, busy_seconds: np.ndarray,
              bytes_up: np.ndarray, bytes_down: np.ndarray, round_seconds: float) -> RoundEnergy:
        """The round's energy: its clients' (``per_client``), the server's (``server_watts`` for the
        whole simulated round) and the network's (every byte moved), and the embodied carbon of
        every device-hour (each participant and the server for the round)."""
        client = float(self.per_client(clients, compute_joules, busy_seconds, bytes_up, bytes_down, round_seconds).sum())
        tier = self.tiers[np.asarray(clients, dtype=np.int64)]
        hours = round_seconds / 3600.0
        embodied = float(np.sum(self.embodied[tier]) * hours + self.cfg.server_embodied_gco2e_per_hour * hours)
        moved = float(np.sum(np.asarray(bytes_up, dtype=np.float64)) + np.sum(np.asarray(bytes_down, dtype=np.float64)))
        return RoundEnergy(client, self.cfg.server_watts * round_seconds, moved * self.cfg.network_joules_per_byte, embodied)


def energy_report(totals: dict, cfg: EnergyConfig, host_source: str | None) -> dict:
    """The result's energy fields from a run's totals: ``energy`` (client, server, network and
    their total; the host's measured joules beside them, not in the total: the host simulates the
    federation, it is not part of it), ``co2e_grams`` (operational + embodied, split in ``co2e``)
    and ``energy_source`` (how the host's joules were obtained)."""
    client, server, network = (float(totals.get(k, 0.0)) for k in ("client_joules", "server_joules", "network_joules"))
    total = client + server + network
    operational = total / JOULES_PER_KWH * cfg.grid_gco2e_per_kwh
    embodied = float(totals.get("embodied_gco2e", 0.0))
    host = float(totals.get("host_joules", 0.0))
    return {"energy": {"client_joules": client, "server_joules": server, "network_joules": network,
                       "total_joules": total, "host_joules": host,
                       "host_co2e_grams": host / JOULES_PER_KWH * cfg.grid_gco2e_per_kwh},
            "co2e_grams": operational + embodied,
            "co2e": {"operational_grams": operational, "embodied_grams": embodied,
                     "grid_gco2e_per_kwh": cfg.grid_gco2e_per_kwh},
            "energy_source": host_source or "estimated"}
