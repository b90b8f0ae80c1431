"""Privacy accounting with Opacus's accountants (never our own derivation).

A round is one step of the subsampled Gaussian mechanism on the users: sampling rate ``q =
clients_per_round / num_clients`` and noise multiplier ``z`` (noise std over the clipping norm).
Our rounds select a fixed number of clients without replacement while the accountants analyse
Poisson sampling at rate ``q``; that is the usual approximation (as in TF Privacy's DP-FedAvg
tutorials), stated in the README. Opacus is imported here only, and only when a run is private.
"""

from __future__ import annotations


def make_accountant(kind: str):
    from opacus.accountants import PRVAccountant, RDPAccountant

    return RDPAccountant() if kind == "rdp" else PRVAccountant()


def noise_for_epsilon(target_epsilon: float, delta: float, sample_rate: float, steps: int, kind: str) -> float:
    """The smallest noise multiplier Opacus finds that spends at most ``target_epsilon``."""
    from opacus.accountants.utils import get_noise_multiplier

    return float(get_noise_multiplier(target_epsilon=target_epsilon, target_delta=delta, sample_rate=sample_rate,
                                      steps=steps, accountant=kind))


def epsilon_after(steps: int, noise_multiplier: float, sample_rate: float, delta: float, kind: str) -> float:
    """Epsilon spent by ``steps`` identical rounds (what a run's accountant reports)."""
    acc = make_accountant(kind)
    for _ in range(steps):
        acc.step(noise_multiplier=noise_multiplier, sample_rate=sample_rate)
    return float(acc.get_epsilon(delta=delta))
