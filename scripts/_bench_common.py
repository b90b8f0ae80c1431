"""What every ``scripts/bench_*.py`` shares: a plain-text table, the JSON record, PNG charts, and a
fresh child process per measurement (so each engine's peak RSS is its own)."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], formats: Sequence[str | None] = ()
) -> str:
    """Columns padded to their widest cell; numbers right-aligned, text left-aligned.

    ``formats`` gives a format spec per column (``".4f"``); a column without one is formatted by
    its values: integers with thousands separators, floats to 0, 2 or 4 decimals by magnitude.
    """
    specs = [
        formats[i] if i < len(formats) and formats[i] else _auto_format([r[i] for r in rows])
        for i in range(len(headers))
    ]
    body = [
        [format(v, spec) if spec and _is_number(v) else str(v) for v, spec in zip(row, specs)] for row in rows
    ]
    cells = [[str(h) for h in headers], *body]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(_is_number(row[i]) for row in rows) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)
        ).rstrip()

    return "\n".join([line(cells[0]), line(["-" * w for w in widths]), *map(line, cells[1:])])


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _auto_format(values: Sequence[object]) -> str | None:
    numbers = [v for v in values if _is_number(v)]
    if not numbers:
        return None
    if all(isinstance(v, int) for v in numbers):
        return ",d"
    largest = max(abs(v) for v in numbers)
    return ",.0f" if largest >= 100 else ".2f" if largest >= 1 else ".4f"


def write_json(path: str | os.PathLike, record: dict) -> Path:
    """The record as indented JSON, written to a temporary file and renamed when complete."""
    from data_pipeline.atomic import write_text_atomic

    return write_text_atomic(path, json.dumps(record, indent=2) + "\n", "--json")


def machine() -> dict:
    """Where a number was measured: timings on a shared machine mean little without the load."""
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def peak_rss_mb() -> float:
    """Peak resident set of this process so far.

    On Linux this is ``VmHWM`` from ``/proc/self/status``, not ``ru_maxrss``: a child started with
    fork/vfork + exec inherits its parent's ``ru_maxrss`` high-water mark, so a fresh child of a
    600 MB parent reported a 600 MB peak before doing anything. ``VmHWM`` belongs to the process's
    own address space, which exec replaces. (``ru_maxrss`` is KiB on Linux, bytes on macOS.)
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def rss_mb() -> float:
    """Resident set of this process now (Linux ``/proc``; elsewhere the peak so far)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)
    except OSError:
        return peak_rss_mb()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_child(args: Sequence[str], timeout: float | None = None) -> dict:
    """Run ``python ARGS`` in a fresh process and return the JSON object on its last stdout line."""
    proc = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"child {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(lines[-1])


def bar_chart(
    path: str | os.PathLike, labels: Sequence[str], panels: dict[str, Sequence[float]], title: str,
    highlight_first: bool = True,
) -> Path:
    """One horizontal bar panel per metric, side by side, labelled with their values; the first bar
    (ours, in a comparison) is highlighted unless ``highlight_first`` is off."""
    plt = _pyplot()
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.2 * len(panels), 0.5 * len(labels) + 1.6), squeeze=False
    )
    for ax, (name, values) in zip(axes[0], panels.items()):
        bars = ax.barh(list(labels), list(values), color="tab:blue")
        if highlight_first:
            bars[0].set_color("tab:orange")  # the first label is ours
        ax.bar_label(
            bars, labels=[format(float(v), _auto_format([float(v)])) for v in values], fontsize=7, padding=2
        )
        ax.set_title(name, fontsize=9)
        ax.invert_yaxis()
        ax.margins(x=0.25)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def line_chart(
    path: str | os.PathLike,
    x: Sequence[float],
    series: dict[str, Sequence[float]],
    xlabel: str,
    ylabel: str,
    title: str,
) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, ys in series.items():
        ax.plot(list(x), list(ys), marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path
