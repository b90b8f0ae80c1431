"""``fedrec train --config ...`` (federated, any mode) and the federated ``fedrec demo``."""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from data_pipeline.datasets import data_root
from data_pipeline.errors import ConfigError


def run_federated_from_args(args) -> int:
    from fedrec.config import load_config

    if not args.config:
        raise ConfigError("--config", "federated training needs --config FILE.yaml")
    overrides = {"rounds": args.rounds, "tensorboard": args.tensorboard, "plot": args.plot,
                 "checkpoint_dir": args.checkpoint_dir}
    cfg = load_config(args.config, **overrides)
    if cfg.checkpoint_dir is None:
        # Every CLI run can be resumed: checkpoints go under runs/<config name>/ unless the config says.
        cfg = cfg.with_(checkpoint_dir=str(Path("runs") / Path(args.config).stem / "checkpoints"))
    if cfg.checkpoint_every == 0:
        cfg = cfg.with_(checkpoint_every=cfg.eval_every)
    result = _run(cfg, None, progress=sys.stderr.isatty(), resume=args.resume)
    if args.json:
        result.to_json(args.json)
    print(result.summary())
    return 0


def _run(cfg, data, progress: bool, resume: bool = False):
    from fedrec import run

    return run(cfg, data=data, progress=progress, resume=resume)


def run_demo() -> int:
    """The embedded default: ml100k-fed with the tuned settings (``fedrec/defaults/demo.yaml``) when
    ML-100K is under $FEDREC_DATA; otherwise the same settings on 1,000 synthetic Criteo-like
    clients (a smoke run: no real data, so its AUC means little)."""
    import yaml

    from fedrec.config import config_from_dict

    doc = yaml.safe_load(resources.files("fedrec").joinpath("defaults/demo.yaml").read_text())
    cfg = config_from_dict(doc)
    data = None
    if (data_root() / "ml-100k").exists():
        where = data_root() / "ml-100k"
    else:
        from fedrec.synthetic import synthetic_federated_data

        data = synthetic_federated_data(1000, rows_per_client=20, max_cardinality=5_000)
        where = f"synthetic Criteo-like data ({data_root() / 'ml-100k'} not found)"
    print(f"demo: federated DLRM on {where} ({cfg.rounds} rounds x {cfg.clients_per_round} clients, {cfg.strategy.name})")
    print(_run(cfg, data, progress=True).summary())
    return 0
