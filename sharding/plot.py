"""A picture of a plan: each GPU's predicted cost (lookups, communication) and its HBM / host memory use."""

from __future__ import annotations

import os

from sharding.topology import GB


def plot_plan(plan_dict: dict, path: str | os.PathLike, title: str | None = None) -> None:
    """Write a PNG of ``Plan.to_dict()``: cost per GPU (left), memory per GPU (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cost = plan_dict["gpu_cost"]
    comm = plan_dict.get("gpu_comm_cost", [0.0] * len(cost))
    gpus = range(len(cost))
    hbm = [b / GB for b in plan_dict["gpu_hbm_bytes"]]
    uvm = [b / GB for b in plan_dict["gpu_uvm_bytes"]]
    topo = plan_dict["topology"]
    budget = topo["hbm_gb"] * (1 - topo["hbm_reserved_fraction"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.bar(gpus, [c - m for c, m in zip(cost, comm)], color="tab:blue", label="lookups and fixed cost")
    left.bar(gpus, comm, bottom=[c - m for c, m in zip(cost, comm)], color="tab:purple", alpha=0.6, label="all-to-all, reduction")
    left.axhline(sum(cost) / len(cost), color="gray", ls="--", lw=1, label="mean")
    left.set(xlabel="GPU", ylabel="embedding time (ms / iteration)", title="predicted cost per GPU")
    left.legend(fontsize=8)
    right.bar(gpus, hbm, color="tab:green", label="HBM (hot rows)")
    right.bar(gpus, uvm, bottom=hbm, color="tab:orange", alpha=0.6, label="host / UVM (cold rows)")
    right.axhline(budget, color="tab:green", ls="--", lw=1, label="HBM budget")
    right.set(xlabel="GPU", ylabel="GB", title="memory per GPU")
    right.legend(fontsize=8)
    fig.suptitle(title or f"{plan_dict['planner']}: max {plan_dict['max_gpu_cost']:.4g} ms, imbalance {plan_dict['imbalance']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
