"""Typed results of the two public entry points (``sample`` and ``evaluate``), and their outputs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from data_pipeline.atomic import atomic_path, write_json_atomic
from data_pipeline.schema import InteractionData
from sampling.metrics import METRICS


@dataclass
class SampleResult:
    """What ``sampling.sample`` kept, and how it compares with the input."""

    method: str
    requested_method: str
    requested_rate: float
    rate: float  # fraction of rows actually kept
    seed: int
    rows_before: int
    rows_after: int
    users_before: int
    users_after: int
    items_before: int
    items_after: int
    predicted_tau: float | None
    seconds: float
    data: InteractionData = field(repr=False)

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "data"}


@dataclass
class EvaluationResult:
    """Kendall's tau per sampler, rate, seed and metric, with the runs behind it."""

    dataset: str
    methods: list[str]
    rates: list[float]
    models: list[str]
    seeds: list[int]
    full: dict  # seed -> model -> metric -> value
    runs: list[dict]
    taus: list[dict]  # {method, rate, seed, metric, tau}
    noise_ceiling: dict  # metric -> mean tau between independent full-data experiments (None with one seed)
    seconds: float
    trained_runs: int
    ceiling_runs: dict = field(default_factory=dict)  # seed -> model -> metrics, each on its own random split
    split: str = "temporal"

    @classmethod
    def build(cls, **kwargs) -> EvaluationResult:
        from sampling.harness import noise_ceiling, taus_against

        taus = taus_against(kwargs["full"], kwargs["runs"], kwargs["models"], kwargs["seeds"])
        ceiling = noise_ceiling(kwargs.get("ceiling_runs", {}), kwargs["models"])
        return cls(**kwargs, taus=taus, noise_ceiling=ceiling)

    def tau(self, method: str, rate: float, metric: str | None = None) -> tuple[float, float]:
        """Mean and spread (std over seeds) of tau; averaged over metrics unless one is named."""
        per_seed = [
            np.nanmean([t["tau"] for t in self.taus if t["method"] == method and t["rate"] == rate
                        and t["seed"] == s and (metric is None or t["metric"] == metric)])
            for s in self.seeds
        ]  # fmt: skip
        return float(np.nanmean(per_seed)), float(np.nanstd(per_seed))

    def table(self) -> dict[str, dict[float, tuple[float, float]]]:
        return {m: {r: self.tau(m, r) for r in self.rates} for m in self.methods}

    def format_table(self) -> str:
        head = f"{'sampler':<14}" + "".join(f"{f'{r:.0%}':>15}" for r in self.rates)
        lines = [head, "-" * len(head)]
        for method, row in self.table().items():
            lines.append(f"{method:<14}" + "".join(f"{f'{mu:+.2f} ± {sd:.2f}':>15}" for mu, sd in row.values()))
        ceiling = [v for v in self.noise_ceiling.values() if v is not None]
        if ceiling:
            lines.append(
                f"noise ceiling (tau between full-data runs on other random splits and seeds, mean over metrics): "
                f"{np.mean(ceiling):+.2f}"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        tau = {
            method: {
                f"{rate:g}": {
                    **{m: dict(zip(("mean", "std"), self.tau(method, rate, m))) for m in METRICS},
                    "all": dict(zip(("mean", "std"), self.tau(method, rate))),
                }
                for rate in self.rates
            }
            for method in self.methods
        }
        return {
            "dataset": self.dataset,
            "methods": self.methods,
            "rates": self.rates,
            "models": self.models,
            "metrics": list(METRICS),
            "seeds": self.seeds,
            "tau": tau,
            "noise_ceiling": self.noise_ceiling,
            "split": self.split,
            "full": {str(s): v for s, v in self.full.items()},
            "ceiling_runs": {str(s): v for s, v in self.ceiling_runs.items()},
            "taus": self.taus,
            "runs": self.runs,
            "seconds": self.seconds,
            "trained_runs": self.trained_runs,
        }

    def write_json(self, path: str | os.PathLike) -> None:
        write_json_atomic(path, _finite(self.to_dict()), indent=1)

    def plot(self, path: str | os.PathLike) -> None:
        """Heat map of mean tau (over metrics and seeds), samplers x rates."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        grid = np.array([[self.tau(m, r)[0] for r in self.rates] for m in self.methods])
        fig, ax = plt.subplots(figsize=(1.2 * len(self.rates) + 2.5, 0.45 * len(self.methods) + 1.5))
        im = ax.imshow(grid, cmap="RdYlGn", vmin=-1, vmax=1, aspect="auto")
        ax.set_xticks(range(len(self.rates)), [f"{r:.0%}" for r in self.rates])
        ax.set_yticks(range(len(self.methods)), self.methods)
        for (i, j), v in np.ndenumerate(grid):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8)
        ax.set_xlabel("sampling rate")
        ax.set_title(f"{self.dataset}: Kendall's tau vs full data ({len(self.models)} models)", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.04)
        fig.tight_layout()
        with atomic_path(path, (".png",), "--png") as tmp:
            fig.savefig(tmp, dpi=120)
        plt.close(fig)


def _finite(obj):
    """JSON has no NaN: write null instead."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.generic):
        return _finite(obj.item())
    return obj
