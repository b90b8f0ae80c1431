"""The ``attack`` section of a run config: which clients are Byzantine and what they do."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fedrec.configbase import StrictModel

AttackKind = Literal["none", "sign_flip", "scaling", "gaussian", "alie", "ipm", "label_flip", "item_promotion"]

# The strength ``scale`` means per kind, and its default: chosen so that each attack is real on the
# tuned ML-100K workload with plain mean and 20% attackers (test AUC down >= 0.05 or the target's
# exposure up >= 5x; scripts/bench_robust.py measures it). Seed-0 calibration: scaling x10 cost
# only 0.03 AUC (FedYogi normalises the step), x100 0.06, x1000 0.08; label flipping alone is
# mild, so the flipped update is boosted x4; fake positive rows alone already put the target in
# every benign user's top 10, so item promotion needs no boost (``scale`` adds one).
SCALE_MEANING = {
    "sign_flip": "the attacker uploads -scale times its honest update",
    "scaling": "the attacker uploads scale times its honest update",
    "gaussian": "the attacker uploads N(0, scale^2) noise in place of each value it would send",
    "ipm": "the attackers upload -scale times the benign clients' mean (IPM's epsilon)",
    "label_flip": "the attacker trains on flipped labels and uploads scale times that update",
    "item_promotion": "the target item's row in the attacker's update is multiplied by scale",
}
DEFAULT_SCALE = {"sign_flip": 4.0, "scaling": 1000.0, "gaussian": 1.0, "ipm": 4.0, "label_flip": 4.0, "item_promotion": 1.0}


class AttackConfig(StrictModel):
    kind: AttackKind = "none"
    fraction: float = Field(0.2, gt=0, lt=1)  # of all clients, chosen once per run (seeded)
    seed: int | None = Field(None, ge=0)  # which clients are attackers (default: the run's seed)
    scale: float | None = Field(None, gt=0)  # strength; see SCALE_MEANING (default DEFAULT_SCALE)
    z: float | None = Field(None, gt=0)  # alie: the shift in benign standard deviations (default: the paper's z_max)
    target_item: int | None = Field(None, ge=0)  # item_promotion: the promoted item's id (its embedding row)
    target_feature: str = "item"  # item_promotion: the sparse feature that names items
    fake_rows: int = Field(20, ge=1)  # item_promotion: positive rows of the target each attacker adds

    @model_validator(mode="after")
    def _fields_fit_kind(self):
        if self.kind == "item_promotion" and self.target_item is None:
            raise ValueError("item_promotion needs target_item (the item id to promote)")
        if self.z is not None and self.kind != "alie":
            raise ValueError("z is only for alie")
        if self.scale is not None and self.kind not in SCALE_MEANING:
            raise ValueError(f"scale is not used by attack kind {self.kind!r}")
        return self

    @property
    def strength(self) -> float:
        return self.scale if self.scale is not None else DEFAULT_SCALE.get(self.kind, 1.0)
