"""Energy and carbon of every run: the simulated federation's (``model``) and the host's, measured
(``host``)."""

from fedrec.energy.model import ENERGY_TOTALS, EnergyConfig, EnergyModel, RoundEnergy, energy_report

__all__ = ["ENERGY_TOTALS", "EnergyConfig", "EnergyModel", "RoundEnergy", "energy_report"]
