"""User-level differential privacy: DP-FedAvg's client clipping and central Gaussian noise,
adaptive clipping, optional local noise, and Opacus's accountants for the epsilon spent."""

from __future__ import annotations

from fedrec.lazy import exports_of, lazy_exports

# Exports resolve on first use (``fedrec.lazy``): the run config imports ``PrivacyConfig`` without torch.
_LAZY = exports_of({
    "accountant": ("epsilon_after", "make_accountant", "noise_for_epsilon"), "adaptive": ("AdaptiveClipping",),
    "clipping": ("ClipUpdate", "FixedClip", "LocalGaussianNoise", "clip", "update_norm"),
    "config": ("PrivacyConfig",), "noise": ("CentralGaussianNoise",),
})
__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = sorted([*_LAZY, "privacy_steps"])


def privacy_steps(cfg, num_clients: int, model) -> tuple[list, list]:
    """(client steps, server steps) of DP-FedAvg for ``cfg.privacy``."""
    from fedrec.privacy.accountant import noise_for_epsilon
    from fedrec.privacy.adaptive import AdaptiveClipping
    from fedrec.privacy.clipping import ClipUpdate, FixedClip, LocalGaussianNoise
    from fedrec.privacy.noise import CentralGaussianNoise

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
