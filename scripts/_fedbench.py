"""Helpers shared by bench_fel.py, bench_async.py and bench_fairness.py: config loading with the
data path resolved, a fixed-width table, JSON output and matplotlib set-up."""

from __future__ import annotations

import argparse
import json
import math
from contextlib import contextmanager
from pathlib import Path

from fedrec.config import FederatedConfig, load_config

ROOT = Path(__file__).resolve().parents[1]


def config(name: str, **overrides) -> FederatedConfig:
    """A shipped config (configs/NAME) with overrides (dotted names reach into sections); its data
    path resolves under $FEDREC_DATA."""
    return load_config(ROOT / "configs" / name, **overrides)


def parse_value(text: str):
    """'3' -> 3, '0.3' -> 0.3, 'fedadam' -> 'fedadam' (the config's fields validate the rest)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def comma_list(kind):
    """An argparse ``type``: '0,1,2' -> [0, 1, 2] of ``kind``; anything else is argparse's usage
    error (exit 2) naming the option and the bad item."""
    def parse(text: str) -> list:
        try:
            return [kind(v) for v in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got {text!r}") from None
    parse.__name__ = f"{kind.__name__} list"
    return parse


def parse_assignment(text: str, ap, option: str, example: str) -> tuple[str, str]:
    """'client.lr=0.1' -> ('client.lr', '0.1'); anything else stops the script with argparse's
    usage error (exit 2) naming the option and the form expected."""
    key, sep, value = text.partition("=")
    if not (sep and key and value):
        ap.error(f"{option} {text!r}: expected KEY=VALUE (e.g. {example})")
    return key, value


def fmt(v, spec: str = ".4f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, spec) if isinstance(v, int | float) else str(v)


def print_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> None:
    """``columns``: (key, header, format spec) — prints one fixed-width line per row."""
    cells = [[h for _, h, _ in columns]] + [[fmt(r.get(k), spec) for k, _, spec in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for i, row in enumerate(cells):
        print("  ".join(c.rjust(w) if i and j else c.ljust(w) for j, (c, w) in enumerate(zip(row, widths))))


def write_json(out: Path, name: str, payload: dict) -> Path:
    """OUT/NAME, written to a temporary file and renamed (never half-written)."""
    from data_pipeline.atomic import write_text_atomic

    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    write_text_atomic(path, json.dumps(payload, indent=2, default=float))
    return path


def mean_std(values) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation of the values that are not None (None, None if none;
    std None with one value): a seed that never reached a target does not count as 0."""
    import statistics

    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None, None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None)


def pm(mean: float | None, std: float | None, spec: str = ".4f") -> str:
    """'mean ± std' (or the mean alone, or '-')."""
    if mean is None:
        return "-"
    return format(mean, spec) + (f" ± {format(std, spec)}" if std is not None else "")


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")


def cached_result(out: Path, name: str, seed: int, make) -> dict:
    """A run's result as a dict: read from OUT/runs/NAME-sSEED.json when an earlier invocation
    wrote it (long sweeps resume), else ``make()``'s result, written there atomically."""
    from data_pipeline.atomic import write_json_atomic

    path = out / "runs" / f"{slug(name)}-s{seed}.json"
    if path.exists():
        return json.loads(path.read_text())
    result = make().to_dict()
    write_json_atomic(path, result, default=float)
    return result


class RowsTracker:
    """A tracker (``run_config(..., trackers=[...])``) that keeps a run's rows as they come, so a
    run that diverges keeps its history up to then."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def log(self, run_name: str, rnd: int, row: dict) -> None:
        self.rows.append(dict(row))

    def close(self) -> None:
        pass


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    pyplot().close(fig)


@contextmanager
def pool_and_data(base: FederatedConfig, pool=None, data=None):
    """(pool, data) for a benchmark's runs: the caller's (a test's shared pool) or a pool started
    here, holding ``base``'s data, and stopped at the end."""
    from fedrec.runtime import ClientPool, load_federated_data

    owned = pool is None
    pool = pool or ClientPool.from_config(base).start()
    try:
        data = data or load_federated_data(base)
        if owned:
            pool.set_data(data)
        yield pool, data
    finally:
        if owned:
            pool.stop()
