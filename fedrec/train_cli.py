"""``fedrec train`` (central or federated) and ``fedrec demo``."""

from __future__ import annotations

import json
import sys

from data_pipeline.clihelp import HelpFormatter
from data_pipeline.datasets import data_root


def register(subparsers) -> None:
    train = subparsers.add_parser(
        "train", help="train a DLRM centrally or federated", formatter_class=HelpFormatter,
        epilog="examples:\n  fedrec train --mode central --data ../shared/datasets/ml-100k --format movielens --epochs 3 --json out.json\n"
        "  fedrec train --config configs/ml100k_fedavg.yaml --rounds 30 --json out.json",
    )
    train.add_argument("--mode", choices=("central", "federated"), default=None,
                       help="central baseline or federated (default: federated with --config, else central)")
    train.add_argument("--config", help="YAML run config (federated)")
    train.add_argument("--data", help="dataset path (a folder for movielens); relative names resolve under $FEDREC_DATA")
    train.add_argument("--format", default="movielens", choices=("movielens", "criteo", "csv", "tsv", "parquet", "jsonl"))
    train.add_argument("--columns", help="column names for csv/tsv/parquet/jsonl")
    train.add_argument("--epochs", type=int, default=3)
    train.add_argument("--batch-size", type=int, default=256)
    train.add_argument("--lr", type=float, default=0.003)
    train.add_argument("--embedding-dim", type=int, default=16)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--rounds", type=int, help="federated: override the config's rounds")
    train.add_argument("--resume", action="store_true", help="federated: continue from the config's checkpoint")
    train.add_argument("--checkpoint", help="save the trained model here")
    train.add_argument("--json", metavar="OUT", help="write the result as JSON")
    train.set_defaults(func=cmd_train)

    demo = subparsers.add_parser(
        "demo", help="run the main job on an embedded default (ML-100K if found, else synthetic)",
        formatter_class=HelpFormatter, epilog="example:\n  fedrec demo",
    )
    demo.set_defaults(func=cmd_demo)


def cmd_train(args) -> int:
    mode = args.mode or ("federated" if args.config else "central")
    if mode == "federated":
        from fedrec.federated_cli import run_federated_from_args

        return run_federated_from_args(args)
    from data_pipeline.errors import ConfigError
    from fedrec.central import CentralConfig, train_central
    from fedrec.model import ModelConfig

    if not args.data:
        raise ConfigError("--data", "central training needs --data PATH")
    cfg = CentralConfig(
        data=args.data, format=args.format, columns=args.columns, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, model=ModelConfig(embedding_dim=args.embedding_dim), seed=args.seed, checkpoint=args.checkpoint,
    )
    result = train_central(cfg, progress=sys.stderr.isatty())
    if args.json:
        result.to_json(args.json)
    print(f"central: auc={result.auc:.4f} logloss={result.logloss:.4f} ne={result.ne:.4f} "
          f"train_seconds={result.train_seconds:.1f} samples/s={result.samples_per_second:,.0f}")
    return 0


def cmd_demo(args) -> int:
    """The README's `make demo`: ML-100K from $FEDREC_DATA when present, else a synthetic set."""
    try:
        from fedrec.federated_cli import run_demo
    except ModuleNotFoundError:
        run_demo = None
    if run_demo is not None:
        return run_demo()
    from fedrec.central import CentralConfig, train_central

    ml = data_root() / "ml-100k"
    if ml.exists():
        cfg = CentralConfig(data=str(ml), format="movielens", epochs=3)
        print(f"demo: centralized DLRM on {ml}")
    else:
        import tempfile

        from data_pipeline.synth import SynthConfig, write_synthetic

        path = write_synthetic(SynthConfig(rows=50_000, max_cardinality=10_000), tempfile.mkdtemp() + "/synth.tsv")
        cfg = CentralConfig(data=str(path), format="criteo", epochs=2, criteo_buckets=10_000)
        print(f"demo: {ml} not found; centralized DLRM on synthetic Criteo-like data {path}")
    result = train_central(cfg, progress=True)
    print(json.dumps({k: v for k, v in result.__dict__.items() if k != "history"}, indent=2))
    return 0
