"""The ``fedrec`` command line.

Each command family lives beside the code it drives and registers itself here
(``register(subparsers)``): data commands in ``data_pipeline.cli``, training in ``fedrec.train_cli``,
``plan`` in ``sharding.cli``, ``sample`` in ``sampling.cli``. Every error fedrec knows about
(``FedrecError``) is printed as one line on stderr with exit status 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from data_pipeline.clihelp import HelpFormatter
from data_pipeline.errors import FedrecError

# Modules that each provide ``register(subparsers)``; imported lazily so `fedrec --help` stays fast
# and a broken optional family cannot break the others.
COMMAND_MODULES = (
    "data_pipeline.cli",
    "fedrec.train_cli",
    "sharding.cli",
    "sampling.cli",
)


def _sharding_workload_writer(path, tables):
    from sharding.workload import write_workload_from_counts

    write_workload_from_counts(path, tables)


def _stream_trainer(spec, options):
    from fedrec.stream_train import make_stream_trainer

    return make_stream_trainer(spec, options)


# Extra arguments each family's ``register`` takes: the composition the lower layers cannot do.
REGISTER_KWARGS = {
    "data_pipeline.cli": {"workload_writer": _sharding_workload_writer, "stream_trainer": _stream_trainer}
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedrec",
        description="Federated recommender training on Ray with TorchRec.",
        formatter_class=HelpFormatter,
        epilog="example:\n  fedrec data stats ../shared/datasets/ml-100k --format movielens --json",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):  # that family's package is not installed
                continue
            raise
        module.register(sub, **REGISTER_KWARGS.get(name, {}))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Our packages log at INFO; third-party libraries only warnings (fbgemm_gpu logs every .so it
    # loads at INFO on the root logger) unless --verbose.
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if args.verbose:
        os.environ["FEDREC_RAY_LOGS"] = "1"
    else:
        for package in ("fedrec", "data_pipeline", "sharding", "sampling"):
            logging.getLogger(package).setLevel(logging.INFO)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = args.func(args)
    except FedrecError as exc:
        print(f"fedrec: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fedrec: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
