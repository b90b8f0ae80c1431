"""Byzantine clients: a fixed, seeded subset of the clients that poison what they train on
(label flip, fake-user item promotion) or what they upload (sign flip, scaling, Gaussian noise,
and the omniscient ALIE and IPM); plus the target item's exposure, item promotion's measure.

``attack_steps(cfg, num_clients, model)`` gives the pipeline pieces an attack adds;
``poison_data(cfg, data)`` the attackers' poisoned training rows."""

from __future__ import annotations

from fedrec.attacks.attackers import attackers_of, choose_attackers
from fedrec.attacks.config import DEFAULT_SCALE, SCALE_MEANING, AttackConfig
from fedrec.attacks.data_poisoning import add_fake_positives, flip_labels, poison_data
from fedrec.attacks.exposure import pick_target_item, target_exposure
from fedrec.attacks.model_poisoning import AttackerStep, BoostRows, GaussianUpdate, Scaling, SignFlip
from fedrec.attacks.omniscient import ALIE, IPM, OmniscientAttack, alie_z

__all__ = [
    "ALIE", "DEFAULT_SCALE", "IPM", "SCALE_MEANING", "AttackConfig", "AttackerStep", "BoostRows", "GaussianUpdate",
    "OmniscientAttack", "Scaling", "SignFlip", "add_fake_positives", "alie_z", "attack_steps", "attack_summary",
    "attackers_of", "choose_attackers", "flip_labels", "pick_target_item", "poison_data", "target_exposure",
]


def attack_steps(cfg, num_clients: int, model) -> tuple[list, list]:
    """(client steps, server steps) that carry out ``cfg.attack``; ``model`` is the
    ``ModelShapes`` (item promotion boosts the target's row of the item table)."""
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
    a = run.cfg.attack
    attackers = attackers_of(run.cfg, run.data.num_clients)
    out = {"kind": a.kind, "fraction": a.fraction, "attackers": attackers.tolist()}
    if a.kind != "item_promotion":
        return out
    benign = sorted(set(run.clients.tolist()) - set(attackers.tolist()))
    out.update(target_item=a.target_item, target_exposure=target_exposure(
        run.model, run.state, run.data, benign, a.target_item, a.target_feature))
    return out
