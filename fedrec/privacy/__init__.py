"""User-level differential privacy: DP-FedAvg's client clipping and central Gaussian noise,
adaptive clipping, optional local noise, and Opacus's accountants for the epsilon spent."""

from __future__ import annotations

from fedrec.privacy.accountant import epsilon_after, make_accountant, noise_for_epsilon
from fedrec.privacy.adaptive import AdaptiveClipping
from fedrec.privacy.clipping import ClipUpdate, FixedClip, LocalGaussianNoise, clip, update_norm
from fedrec.privacy.config import PrivacyConfig
from fedrec.privacy.noise import CentralGaussianNoise

__all__ = [
    "AdaptiveClipping", "CentralGaussianNoise", "ClipUpdate", "FixedClip", "LocalGaussianNoise", "PrivacyConfig",
    "clip", "epsilon_after", "make_accountant", "noise_for_epsilon", "privacy_steps", "update_norm",
]


def privacy_steps(cfg, num_clients: int, model) -> tuple[list, list]:
    """(client steps, server steps) of DP-FedAvg for ``cfg.privacy``."""
    p = cfg.privacy
    q = min(1.0, cfg.clients_per_round / num_clients)
    delta = p.delta if p.delta is not None else 1.0 / num_clients
    z = p.noise_multiplier
    if z is None:
        z = noise_for_epsilon(p.target_epsilon, delta, q, cfg.rounds, p.accountant)
    client, server = [], []
    if p.adaptive_clipping:
        clipper = AdaptiveClipping(p.clip_norm, p.target_quantile, p.clip_lr,
                                   p.count_noise if p.count_noise is not None else cfg.clients_per_round / 20)
        server.append(clipper)
    else:
        clipper = FixedClip(p.clip_norm)
        client.append(ClipUpdate(p.clip_norm))
    if p.local_noise > 0:
        client.append(LocalGaussianNoise(p.local_noise * p.clip_norm))
    server.append(CentralGaussianNoise(model, z, clipper, cfg.clients_per_round, q, delta, p.accountant))
    return client, server
