"""Where a whole `fedrec train` process spends its time: the fixed costs around the rounds.

Wraps the driver's phases (data loading, Ray start, shipping data to the actors, the host energy
meter, the round loop and each evaluation) with timers, runs ``fedrec train`` with the given
arguments in this process, and prints seconds per phase. Phases overlap (the data loads on a
thread while Ray starts), so they do not add up to the total. The imports of Ray, torch and
fedrec's driver modules are timed apart, first.

    .venv/bin/python scripts/profile_startup.py train --config configs/ml100k_tuned.yaml --rounds 30 --json /tmp/r.json
"""

from __future__ import annotations

import functools
import sys
import time
from collections import defaultdict

TIMES: dict[str, list] = defaultdict(lambda: [0, 0.0])


def timed(owner, attr: str, label: str) -> None:
    f = getattr(owner, attr)

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return f(*args, **kwargs)
        finally:
            TIMES[label][0] += 1
            TIMES[label][1] += time.perf_counter() - start

    setattr(owner, attr, wrapper)


def main(argv: list[str]) -> int:
    start = time.perf_counter()
    import ray

    import fedrec.algorithms.common as common
    import fedrec.cli as cli
    import fedrec.energy.host as host
    import fedrec.runtime.loop as loop
    import fedrec.runtime.pool as pool

    TIMES["imports (Ray, torch, fedrec driver)"] = [1, time.perf_counter() - start]
    timed(common, "_load", "load data + warm TorchRec import (thread)")
    timed(ray, "init", "ray.init")
    timed(pool.ClientPool, "set_data", "ship data to actors (waits for them to boot)")
    timed(host.HostMeter, "__init__", "host energy meter start")
    timed(host.HostMeter, "joules", "host energy meter reads")
    timed(loop.RoundLoop, "run", "round loop (rounds + evaluations)")
    timed(loop.RoundLoop, "_evaluate", "evaluations")
    timed(pool.ClientPool, "stop", "pool stop")
    start = time.perf_counter()
    code = cli.main(argv)
    TIMES["cli.main (everything after interpreter start)"] = [1, time.perf_counter() - start]
    for label, (count, seconds) in TIMES.items():
        print(f"{seconds:8.2f} s  x{count:<3d} {label}")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
