"""Where a whole `fedrec train` process spends its time: the fixed costs around the rounds.

Wraps the driver's phases (data loading, Ray start, the actors booting and taking their data, the
host energy meter, the round loop and each evaluation) with timers as their modules are imported,
so the run keeps its real order of imports, runs ``fedrec train`` with the given arguments in this
process, and prints each phase's seconds and when it ran (seconds since the process started).
Phases overlap (Ray starts on the main thread while another imports torch and loads the data), so
they do not add up to the total.

    .venv/bin/python scripts/profile_startup.py train --config configs/ml100k_tuned.yaml --rounds 30 --json /tmp/r.json
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import sys
import time
from collections import defaultdict

TIMES: dict[str, list] = defaultdict(lambda: [0, 0.0, None, None])  # calls, seconds, first start, last end
T0 = time.time()  # replaced by the process's start time where psutil can tell it

# module -> [(object path in the module, label)]
PHASES = {
    "ray": [("init", "ray.init")],
    "fedrec.runtime.startup": [("load_for_run", "load data + warm imports and the meter (thread)")],
    "fedrec.runtime.pool": [("ClientPool.start", "create the actors"),
                            ("ClientPool.set_data", "ship data to actors (waits for them to boot)"),
                            ("ClientPool.stop", "pool stop")],
    "fedrec.energy.host": [("HostMeter.__init__", "host energy meter start"),
                           ("HostMeter.joules", "host energy meter reads")],
    "fedrec.runtime.loop": [("RoundLoop.run", "round loop (rounds + evaluations)"),
                            ("RoundLoop._evaluate", "evaluations")],
    "torch": [],  # only its import time
}


def timed(owner, attr: str, label: str) -> None:
    f = getattr(owner, attr)

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        start, wall = time.perf_counter(), time.time()
        try:
            return f(*args, **kwargs)
        finally:
            entry = TIMES[label]
            entry[0] += 1
            entry[1] += time.perf_counter() - start
            entry[2] = wall - T0 if entry[2] is None else entry[2]
            entry[3] = time.time() - T0

    setattr(owner, attr, wrapper)


class PatchOnImport(importlib.abc.MetaPathFinder):
    """Times each module of PHASES's import and wraps its phases once it has run."""

    def find_spec(self, name, path, target=None):
        if name not in PHASES:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return None
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            start, wall = time.perf_counter(), time.time()
            exec_module(module)
            TIMES[f"import {name}"] = [1, time.perf_counter() - start, wall - T0, time.time() - T0]
            for dotted, label in PHASES[name]:
                owner_path, _, attr = dotted.rpartition(".")
                owner = functools.reduce(getattr, owner_path.split("."), module) if owner_path else module
                timed(owner, attr, label)

        spec.loader.exec_module = exec_and_patch
        return spec


def main(argv: list[str]) -> int:
    global T0
    try:
        import psutil

        T0 = psutil.Process().create_time()
    except ImportError:
        pass
    sys.meta_path.insert(0, PatchOnImport())
    import fedrec.cli as cli

    start, wall = time.perf_counter(), time.time() - T0
    code = cli.main(argv)
    TIMES["cli.main"] = [1, time.perf_counter() - start, wall, time.time() - T0]
    print("     sum   calls   from     to  (seconds since the process started)")
    for label, (count, seconds, first, last) in sorted(TIMES.items(), key=lambda kv: kv[1][2] or 0):
        print(f"{seconds:8.2f} s  x{count:<3d} {first:6.2f} {last:6.2f}  {label}")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
