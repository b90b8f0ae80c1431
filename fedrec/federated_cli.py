"""``fedrec train --config ...`` (federated) and the federated ``fedrec demo``."""

from __future__ import annotations

import sys
from importlib import resources

from data_pipeline.datasets import data_root
from data_pipeline.errors import ConfigError
from fedrec.config import config_from_dict, load_config


def run_mode(cfg, progress: bool = True, resume: bool = False):
    """Run ``cfg`` by its ``mode``: sync rounds, FEL ensembles, FedBuff, or the RF^2 fairness study."""
    if resume and cfg.mode != "sync":
        raise ConfigError("--resume", f"resuming is supported for mode sync only, not {cfg.mode!r}")
    if cfg.mode == "fel":
        from fedrec.ensemble import run_fel

        return run_fel(cfg, progress=progress)
    if cfg.mode == "fedbuff":
        from fedrec.async_ import run_fedbuff

        return run_fedbuff(cfg, progress=progress)
    if cfg.mode == "fairness":
        from fedrec.fairness import run_fairness

        return run_fairness(cfg, progress=progress)
    from fedrec.server import run

    return run(cfg, progress=progress, resume=resume)


def run_federated_from_args(args) -> int:
    if not args.config:
        raise ConfigError("--config", "federated training needs --config FILE.yaml")
    cfg = load_config(args.config, rounds=args.rounds, seed=None)
    result = run_mode(cfg, progress=sys.stderr.isatty(), resume=args.resume)
    if args.json:
        result.to_json(args.json)
    _print(result)
    return 0


def _print(result) -> None:
    print(
        f"federated: rounds={result.rounds} final_auc={result.final_auc:.4f} ne={result.final_ne:.4f} "
        f"client_updates={result.client_updates} updates/s={result.client_updates_per_second:,.0f} "
        f"wall={result.wall_seconds:.1f}s sim={result.sim_seconds:,.0f}s "
        f"bytes_up={result.bytes_up:,} bytes_down={result.bytes_down:,}"
    )
    if hasattr(result, "summary"):
        print(result.summary())


def run_demo() -> int:
    """The embedded default: ml100k-fed, tuned FedYogi, 30 rounds (needs ML-100K under $FEDREC_DATA)."""
    import yaml

    from fedrec.server import run

    if not (data_root() / "ml-100k").exists():
        raise ConfigError("FEDREC_DATA", f"the demo needs MovieLens-100K at {data_root() / 'ml-100k'}")
    doc = yaml.safe_load(resources.files("fedrec").joinpath("defaults/demo.yaml").read_text())
    cfg = config_from_dict(doc)
    print(f"demo: federated DLRM on {data_root() / 'ml-100k'} ({cfg.rounds} rounds x {cfg.clients_per_round} clients, {cfg.strategy.name})")
    result = run(cfg, progress=True)
    _print(result)
    return 0
