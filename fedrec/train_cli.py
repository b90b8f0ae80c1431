"""``fedrec train`` (central or federated) and ``fedrec demo``."""

from __future__ import annotations

import sys

from data_pipeline.clihelp import HelpFormatter


def register(subparsers) -> None:
    train = subparsers.add_parser(
        "train", help="train a DLRM centrally or federated", formatter_class=HelpFormatter,
        epilog="examples:\n  fedrec train --mode central --data ../shared/datasets/ml-100k --format movielens --epochs 3 --json out.json\n"
        "  fedrec train --config configs/ml100k_fedavg.yaml --rounds 30 --json out.json",
    )
    train.add_argument("--mode", choices=("central", "federated"), default=None,
                       help="central baseline or federated (default: federated with --config, else central)")
    train.add_argument("--config", help="YAML run config (federated; with --mode central: its data and model, trained centrally)")
    train.add_argument("--data", help="dataset path (a folder for movielens); relative names resolve under $FEDREC_DATA")
    train.add_argument("--format", default="movielens", choices=("movielens", "criteo", "csv", "tsv", "parquet", "jsonl"))
    train.add_argument("--columns", help="column names for csv/tsv/parquet/jsonl")
    train.add_argument("--epochs", type=int, default=3)
    train.add_argument("--batch-size", type=int, default=256)
    train.add_argument("--lr", type=float, default=0.003)
    train.add_argument("--embedding-dim", type=int, default=16)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--rounds", type=int, help="federated: override the config's rounds")
    train.add_argument("--resume", action="store_true",
                       help="federated: continue from the last checkpoint (checkpoint_dir; default runs/<config name>/checkpoints)")
    train.add_argument("--checkpoint-dir", help="federated: where checkpoints go (overrides the config)")
    train.add_argument("--tensorboard", metavar="DIR", help="federated: write per-round metrics as TensorBoard events here")
    train.add_argument("--plot", metavar="PNG", help="federated: plot AUC against rounds and simulated time")
    train.add_argument("--checkpoint", help="save the trained model here")
    train.add_argument("--json", metavar="OUT", help="write the result as JSON")
    train.set_defaults(func=cmd_train)

    demo = subparsers.add_parser(
        "demo", help="federated DLRM on ML-100K with the tuned settings (synthetic Criteo-like clients if ML-100K is missing)",
        formatter_class=HelpFormatter, epilog="example:\n  fedrec demo",
    )
    demo.set_defaults(func=cmd_demo)


def cmd_train(args) -> int:
    mode = args.mode or ("federated" if args.config else "central")
    if mode == "federated":
        from fedrec.federated_cli import run_federated_from_args

        return run_federated_from_args(args)
    if args.config:  # the centralized baseline of a federated config: its data, split and model
        from fedrec.central import central_baseline
        from fedrec.config import load_config

        result = central_baseline(load_config(args.config), epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                  progress=sys.stderr.isatty())
        if args.json:
            result.to_json(args.json)
        ranking = (f" hr@10={result.test_hr_at_10:.4f} ndcg@10={result.test_ndcg_at_10:.4f}"
                   if result.test_ndcg_at_10 is not None else "")
        print(f"central: auc={result.auc:.4f} validation_auc={result.validation_auc:.4f} epoch={result.best_epoch}{ranking}")
        return 0
    from data_pipeline.errors import ConfigError
    from fedrec.central import CentralConfig, train_central
    from fedrec.configbase import validate

    if not args.data:
        raise ConfigError("--data", "central training needs --data PATH")
    cfg = validate(CentralConfig, dict(
        data=args.data, format=args.format, columns=args.columns, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, model={"embedding_dim": args.embedding_dim}, seed=args.seed, checkpoint=args.checkpoint,
    ), prefix="--")
    result = train_central(cfg, progress=sys.stderr.isatty())
    if args.json:
        result.to_json(args.json)
    print(f"central: auc={result.auc:.4f} validation_auc={result.validation_auc:.4f} epoch={result.best_epoch} "
          f"logloss={result.logloss:.4f} ne={result.ne:.4f} "
          f"train_seconds={result.train_seconds:.1f} samples/s={result.samples_per_second:,.0f}")
    return 0


def cmd_demo(args) -> int:
    """The README's `make demo` (see ``fedrec.federated_cli.run_demo``)."""
    from fedrec.federated_cli import run_demo

    return run_demo()
