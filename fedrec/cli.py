"""The ``fedrec`` command line.

Each command family lives beside the code it drives and registers itself here
(``register(subparsers)``): data commands in ``data_pipeline.cli``, training in ``fedrec.train_cli``,
``plan`` in ``sharding.cli``, ``sample`` in ``sampling.cli``. Every error fedrec knows about
(``FedrecError``) is printed as one line on stderr with exit status 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import atexit
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


def entry() -> None:
    """The ``fedrec`` console script (and ``python -m fedrec.cli``): ``main()``, then an exit that
    skips the interpreter's teardown.

    Once a command has run and its output is flushed there is nothing left to do, but tearing
    down torch's and TorchRec's modules takes ~1.2 s on 2 cores (more with Ray's) after the last
    line is printed. The exit handlers still run first: this one is registered before any of them,
    so it runs last. A local Ray this process started is killed here rather than shut down by
    Ray's own handler (``fedrec.runtime.ray_runtime.hand_local_ray_to_exit`` says why).
    """
    status = {"code": 1, "kill_ray": False}  # an uncaught exception exits 1, as Python's own exit does
    atexit.register(_exit_now, status)
    try:
        status["code"] = main()
    except SystemExit as exc:  # argparse's usage errors (2) and --help (0)
        status["code"] = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        raise
    finally:
        runtime = sys.modules.get("fedrec.runtime.ray_runtime")  # imported only by commands that use Ray
        status["kill_ray"] = runtime is not None and runtime.hand_local_ray_to_exit()
    sys.exit(status["code"])


def _exit_now(status: dict) -> None:
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    if status["kill_ray"]:
        from fedrec.runtime.ray_runtime import kill_local_ray

        kill_local_ray()
    os._exit(status["code"])


if __name__ == "__main__":
    entry()
