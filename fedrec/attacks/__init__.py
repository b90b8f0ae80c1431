"""Byzantine clients: a fixed, seeded subset of the clients that poison what they train on
(label flip, fake-user item promotion) or what they upload (sign flip, scaling, Gaussian noise,
and the omniscient ALIE and IPM); plus the target item's exposure, item promotion's measure.

``attack_steps(cfg, num_clients, model)`` gives the pipeline pieces an attack adds;
``poison_data(cfg, data)`` the attackers' poisoned training rows."""

from __future__ import annotations

from fedrec.lazy import lazy_exports

# Exports resolve on first use: the run config imports ``fedrec.attacks.config``, and importing this
# package must not pull torch and the data readers into every config load (the CLI imports torch on
# a thread while Ray starts).
_LAZY = {
    "attackers_of": "attackers", "choose_attackers": "attackers",
    "DEFAULT_SCALE": "config", "SCALE_MEANING": "config", "AttackConfig": "config",
    "add_fake_positives": "data_poisoning", "flip_labels": "data_poisoning", "poison_data": "data_poisoning",
    "pick_target_item": "exposure", "target_exposure": "exposure",
    "AttackerStep": "model_poisoning", "BoostRows": "model_poisoning", "GaussianUpdate": "model_poisoning",
    "Scaling": "model_poisoning", "SignFlip": "model_poisoning",
    "ALIE": "omniscient", "IPM": "omniscient", "OmniscientAttack": "omniscient", "alie_z": "omniscient",
}

__all__ = sorted([*_LAZY, "attack_steps", "attack_summary"])
__getattr__ = lazy_exports(__name__, _LAZY)


def attack_steps(cfg, num_clients: int, model) -> tuple[list, list]:
    """(client steps, server steps) that carry out ``cfg.attack``; ``model`` is the
    ``ModelShapes`` (item promotion boosts the target's row of the item table)."""
    from fedrec.attacks.attackers import attackers_of
    from fedrec.attacks.model_poisoning import BoostRows, GaussianUpdate, Scaling, SignFlip
    from fedrec.attacks.omniscient import ALIE, IPM

    a = cfg.attack
    attackers = attackers_of(cfg, num_clients)
    s = a.strength
    if a.kind == "sign_flip":
        return [SignFlip(attackers, s)], []
    if a.kind in ("scaling", "label_flip"):
        return ([Scaling(attackers, s)] if s != 1.0 else []), []
    if a.kind == "gaussian":
        return [GaussianUpdate(attackers, s)], []
    if a.kind == "alie":
        return [], [ALIE(attackers, z=a.z)]
    if a.kind == "ipm":
        return [], [IPM(attackers, scale=s)]
    if a.kind == "item_promotion":
        return ([BoostRows(attackers, s, model.table_of(a.target_feature), [a.target_item])] if s != 1.0 else []), []
    return [], []


def attack_summary(run) -> dict:
    """The result JSON's ``attack``: kind, fraction, the attacker ids, and for item promotion the
    target item and its final exposure over benign users."""
    from fedrec.attacks.attackers import attackers_of
    from fedrec.attacks.exposure import target_exposure

    a = run.cfg.attack
    attackers = attackers_of(run.cfg, run.data.num_clients)
    out = {"kind": a.kind, "fraction": a.fraction, "attackers": attackers.tolist()}
    if a.kind != "item_promotion":
        return out
    benign = sorted(set(run.clients.tolist()) - set(attackers.tolist()))
    out.update(target_item=a.target_item, target_exposure=target_exposure(
        run.model, run.state, run.data, benign, a.target_item, a.target_feature))
    return out
