"""What a federated run reports: one dataclass, assembled from a run's record by ``from_run``, and
written as JSON (atomically) and, optionally, a PNG of AUC against rounds and simulated time.

``final_auc`` is the test AUC of the final model; ``validation_auc`` is the same model on the
validation split, the number hyper-parameters are chosen by.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from data_pipeline.atomic import atomic_path, write_json_atomic
from fedrec.energy import energy_report


@dataclass
class FederatedResult:
    final_auc: float
    final_logloss: float
    final_ne: float
    validation_auc: float
    validation_logloss: float
    rounds: int
    client_updates: int
    wall_seconds: float
    train_wall_seconds: float
    sim_seconds: float
    client_updates_per_second: float
    bytes_up: int
    bytes_down: int
    dense_bytes_up: int  # what the same updates would cost uploading the whole model
    per_tier_auc: dict[str, float]
    dense_bytes_down: int = 0  # what the same downloads would cost as whole models
    compression_ratio_up: float | None = None  # dense_bytes_up / bytes_up (whole-model exchange over what was sent)
    compression_ratio_down: float | None = None  # dense_bytes_down / bytes_down
    pipeline: dict = field(default_factory=dict)  # what the update pipeline's steps report (e.g. codec seconds)
    resumed_from_round: int = 0  # 0: a fresh run
    failed_updates: int = 0  # clients lost to dead actors
    test_hr_at_10: float | None = None  # the catalogue ranked for each user (natural partitions)
    test_ndcg_at_10: float | None = None
    validation_hr_at_10: float | None = None
    validation_ndcg_at_10: float | None = None
    private_tables: list[str] = field(default_factory=list)  # never left a device
    uploaded_tables: list[str] = field(default_factory=list)  # tables whose rows left some device
    auc_trained_clients: float | None = None  # test AUC of clients that have trained their private rows
    auc_untrained_clients: float | None = None  # ... and of those still on the initial rows
    nodes: int = 1  # distinct Ray nodes hosting the client actors (at the end of the run)
    actors_per_node: list[int] = field(default_factory=list)
    target_auc: float | None = None
    rounds_to_target: int | None = None  # first evaluated round whose test AUC reached target_auc
    sim_seconds_to_target: float | None = None
    bytes_to_target: int | None = None  # up + down until then
    # The simulated federation's energy (``fedrec.energy``): client + server + network = total, and
    # the host's joules beside them; carbon (operational + embodied); how the host's were obtained.
    energy: dict = field(default_factory=dict)
    co2e_grams: float = 0.0
    co2e: dict = field(default_factory=dict)
    energy_source: str = "estimated"
    history: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    # Only in runs that have them (``to_dict`` leaves them out otherwise): privacy spent (user-level),
    # secure aggregation's cost, the attack and its attackers.
    epsilon: float | None = None
    delta: float | None = None
    privacy: dict | None = None
    secagg: dict | None = None
    attack: dict | None = None

    @classmethod
    def from_run(cls, run, wall_seconds: float, **extra) -> FederatedResult:
        """The result of ``run`` (a ``FederatedRun`` after its last round), plus mode-specific fields."""
        from fedrec.config import config_to_dict

        final = run.final_metrics()
        placement = run.pool.placement() if run.pool is not None and hasattr(run.pool, "placement") else {}
        t = run.totals
        target = run.cfg.target_auc
        reached = time_to_target(run.history, target)
        base = dict(
            final_auc=final["auc"], final_logloss=final["logloss"], final_ne=final["ne"],
            validation_auc=final.get("validation_auc", float("nan")),
            validation_logloss=final.get("validation_logloss", float("nan")),
            rounds=run.round, client_updates=t["client_updates"], wall_seconds=wall_seconds,
            train_wall_seconds=t["train_wall_seconds"], sim_seconds=t["sim_seconds"],
            client_updates_per_second=t["client_updates"] / t["train_wall_seconds"] if t["train_wall_seconds"] else 0.0,
            bytes_up=t["bytes_up"], bytes_down=t["bytes_down"], dense_bytes_up=t["dense_bytes_up"],
            dense_bytes_down=t.get("dense_bytes_down", 0),
            compression_ratio_up=t["dense_bytes_up"] / t["bytes_up"] if t["bytes_up"] else None,
            compression_ratio_down=t.get("dense_bytes_down", 0) / t["bytes_down"] if t["bytes_down"] else None,
            pipeline=run.pipeline.report(),
            per_tier_auc=final.get("per_tier_auc", {}), resumed_from_round=run.resumed_from_round,
            failed_updates=t["failed_updates"], target_auc=target, rounds_to_target=reached[0],
            nodes=max(1, len(placement)), actors_per_node=sorted(placement.values(), reverse=True),
            test_hr_at_10=final.get("test_hr_at_10"), test_ndcg_at_10=final.get("test_ndcg_at_10"),
            validation_hr_at_10=final.get("validation_hr_at_10"), validation_ndcg_at_10=final.get("validation_ndcg_at_10"),
            private_tables=[_feature(run, n) for n in run.private_tables],
            uploaded_tables=sorted(_feature(run, n) for n in run.uploaded_tables),
            auc_trained_clients=final.get("auc_trained_clients"), auc_untrained_clients=final.get("auc_untrained_clients"),
            sim_seconds_to_target=reached[1], bytes_to_target=reached[2],
            history=run.history, config=config_to_dict(run.cfg), **trust_fields(run),
            **energy_report(run.totals, run.cfg.energy, run.totals.get("host_source")),
        )
        return cls(**{**base, **extra})

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        return {k: v for k, v in out.items() if not (k in TRUST_KEYS and v is None)}

    def to_json(self, path: str | Path) -> None:
        write_json_atomic(path, self.to_dict(), default=float)

    def summary(self) -> str:
        line = (f"federated: rounds={self.rounds} final_auc={self.final_auc:.4f} validation_auc={self.validation_auc:.4f} "
                f"ne={self.final_ne:.4f} client_updates={self.client_updates} updates/s={self.client_updates_per_second:,.0f} "
                f"wall={self.wall_seconds:.1f}s sim={self.sim_seconds:,.0f}s bytes_up={self.bytes_up:,} bytes_down={self.bytes_down:,}"
                f" energy={self.energy.get('total_joules', 0.0):,.0f}J co2e={self.co2e_grams:.3g}g")
        if self.epsilon is not None:
            line += f" epsilon={self.epsilon:.3f} delta={self.delta:.2e}"
        if self.secagg is not None:
            line += f" secagg_bytes_overhead={self.secagg['bytes_overhead']:,} secagg_seconds={self.secagg['seconds']:.1f}"
        if self.attack is not None:
            line += f" attack={self.attack['kind']}x{len(self.attack['attackers'])}"
        return line


TRUST_KEYS = ("epsilon", "delta", "privacy", "secagg", "attack")


def trust_fields(run) -> dict:
    """What the run's pipeline reports (privacy spent, secure aggregation's cost) and its attack."""
    out = {k: v for k, v in run.pipeline.report().items() if k in TRUST_KEYS}
    attack = getattr(run.cfg, "attack", None)
    if attack is not None and attack.kind != "none":
        from fedrec.attacks import attack_summary

        out["attack"] = attack_summary(run)
    return out


def _feature(run, table: str) -> str:
    """Tables are named in results by their feature (``user``, ``item``), as configs name them."""
    return run.layout.tables.get(table, table)


def time_to_target(history: list[dict], target: float | None) -> tuple[int | None, float | None, int | None]:
    """Round, simulated seconds and bytes (up + down) when the evaluated test AUC first reaches
    ``target``."""
    if target is None:
        return None, None, None
    moved = 0
    for h in history:
        moved += h.get("bytes_up", 0) + h.get("bytes_down", 0)
        if h.get("auc", -1.0) >= target:
            return int(h["round"]), float(h["sim_seconds"]), int(moved)
    return None, None, None


def plot_history(result: FederatedResult, out: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [h for h in result.history if "auc" in h]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for key, label in (("auc", "test"), ("validation_auc", "validation")):
        axes[0].plot([h["round"] for h in rows], [h.get(key, float("nan")) for h in rows], marker="o", label=label)
        axes[1].plot([h["sim_seconds"] for h in rows], [h.get(key, float("nan")) for h in rows], marker="o", label=label)
    axes[0].set_xlabel("round")
    axes[1].set_xlabel("simulated seconds")
    for ax in axes:
        ax.set_ylabel("AUC")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{result.config.get('strategy', {}).get('name', '')}: final test AUC {result.final_auc:.4f}")
    fig.tight_layout()
    with atomic_path(out, (".png", ".pdf", ".svg"), "plot") as tmp:
        fig.savefig(tmp, dpi=120, format=Path(out).suffix.lstrip(".").lower())
    plt.close(fig)


def load_result(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())
