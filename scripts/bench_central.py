"""ML-100K centralized DLRM (the baseline every federated result is compared with): AUC, log loss
and normalized entropy on the temporal test split after each epoch, and training samples/s.

Everything but ``--epochs``, ``--batch-size`` and ``--seed`` is ``CentralConfig``'s default, so the
numbers are those of ``fedrec train --mode central`` on the same data. ``--quick`` trains one epoch
on the first 20,000 ratings with batches of 1,024 (a smoke test of the script, not a result).

    .venv/bin/python scripts/bench_central.py            # 3 epochs, results/bench_central/
    .venv/bin/python scripts/bench_central.py --quick
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from _bench_common import REPO_ROOT, format_table, line_chart, machine, write_json

QUICK_BATCH = 1024
QUICK_RATINGS = 20_000


def parse_args(argv: Iterable[str] | None = None) -> argparse.Namespace:
    from fedrec.central import CentralConfig

    default = CentralConfig(data="")
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data", type=Path, default=None, help="ML-100K folder (default: dataset_path('ml-100k'))"
    )
    p.add_argument("--epochs", type=int, default=None, help=f"default {default.epochs}; 1 with --quick")
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"default {default.batch_size}; {QUICK_BATCH} with --quick",
    )
    p.add_argument(
        "--max-ratings", type=int, default=None, help="train and test on the first N ratings of u.data"
    )
    p.add_argument("--seed", type=int, default=default.seed)
    p.add_argument(
        "--quick", action="store_true", help=f"smoke test: one epoch, first {QUICK_RATINGS:,} ratings"
    )
    p.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "bench_central")
    args = p.parse_args(argv)
    args.epochs = args.epochs or (1 if args.quick else default.epochs)
    args.batch_size = args.batch_size or (QUICK_BATCH if args.quick else default.batch_size)
    args.max_ratings = args.max_ratings or (QUICK_RATINGS if args.quick else None)
    return args


def first_ratings(folder: Path, n: int, out: Path) -> Path:
    """A copy of an ML-100K folder whose u.data holds only its first ``n`` ratings (u.data is in no
    particular order, so they are a sample over users, items and time)."""
    subset = out / f"{folder.name}-first{n}"
    subset.mkdir(parents=True, exist_ok=True)
    for name in ("u.user", "u.item"):
        shutil.copyfile(folder / name, subset / name)
    with open(folder / "u.data", "rb") as src, open(subset / "u.data", "wb") as dst:
        for _, line in zip(range(n), src):
            dst.write(line)
    return subset


def main(argv: Iterable[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from data_pipeline.datasets import dataset_path
    from fedrec.central import CentralConfig, train_central

    data = args.data or dataset_path("ml-100k")
    if args.max_ratings:
        data = first_ratings(Path(data), args.max_ratings, args.out)
    cfg = CentralConfig(data=str(data), epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
    start = time.perf_counter()
    result = train_central(cfg, progress=sys.stderr.isatty())
    wall = time.perf_counter() - start

    rows = [[h["epoch"], h["train_loss"], h["validation_auc"], h["auc"], h["logloss"], h["ne"]] for h in result.history]
    print(
        format_table(
            ["epoch", "train loss", "validation AUC", "test AUC", "test logloss", "test NE"],
            rows,
            [None, ".4f", ".4f", ".4f", ".4f", ".4f"],
        )
    )
    print(
        f"train {result.train_rows:,} rows, validation {result.validation_rows:,}, test {result.test_rows:,}, batch "
        f"{cfg.batch_size}: {result.samples_per_second:,.0f} samples/s ({result.train_seconds:.1f} s training, "
        f"{wall:.1f} s with loading and evaluation); epoch {result.best_epoch} chosen on validation AUC "
        f"({result.validation_auc:.4f}): test AUC {result.auc:.4f}"
    )

    record = {
        "benchmark": "central_ml100k",
        "data": str(data),
        "max_ratings": args.max_ratings,
        "config": {k: v for k, v in cfg.model_dump(mode="json").items() if k != "data"},
        "history": result.history,
        "final": {"auc": result.auc, "logloss": result.logloss, "ne": result.ne, "epoch": result.best_epoch,
                  "validation_auc": result.validation_auc},
        "best_epoch": result.best_epoch,  # chosen on validation AUC
        "train_rows": result.train_rows,
        "validation_rows": result.validation_rows,
        "test_rows": result.test_rows,
        "train_seconds": result.train_seconds,
        "samples_per_second": result.samples_per_second,
        "wall_seconds": wall,
        "torch_threads": torch.get_num_threads(),
        "machine": machine(),
    }
    json_path = write_json(args.out / "bench_central.json", _jsonable(record))
    png = line_chart(
        args.out / "bench_central.png",
        [h["epoch"] for h in result.history],
        {"validation AUC": [h["validation_auc"] for h in result.history], "test AUC": [h["auc"] for h in result.history]},
        "epoch",
        "AUC",
        f"ML-100K central DLRM (batch {cfg.batch_size}, {result.samples_per_second:,.0f} samples/s)",
    )
    print(f"wrote {json_path} and {png}", file=sys.stderr)
    return 0


def _jsonable(obj):
    """Tuples to lists (``ModelConfig`` holds tuples); everything else is already JSON."""
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


if __name__ == "__main__":
    sys.exit(main())
