"""Disaggregated preprocessing (``fedrec data preprocess``): how long a trainer waits for data
with preprocessing on the trainer versus in a pool of 1, 2 and 4 Ray Data workers.

One synthetic Criteo-like file (10M rows by default, made by ``fedrec data synth``, streamed from
disk) goes through the same transforms (dense log1p, categorical hashing) in every run; each run
streams the first ``--rows-per-run`` rows that arrive (all of them with ``--rows-per-run 0``). Each
run is a fresh process with its own Ray, so runs are like for like, and every run goes through the
same loop (batches of ``--batch-size`` into a trainer). Three trainers:

* ``prep``: a trainer that takes no time: the stream's own rows/s (its stall is ~1 by design);
* ``accel``: an accelerator stand-in that holds each batch ``--accel-ms`` without using the CPU
  (as a GPU step leaves the host's cores free): the DPP setting, where the trainer is fast and the
  host CPU is what preprocessing competes for;
* ``dlrm``: the real central DLRM (``fedrec.stream_train``) training on the CPU, ``--dlrm-steps``
  steps: here the trainer itself needs a core.

Workers = 0 is preprocessing on the trainer (``InProcessStream``: the same unit function, in the
trainer's thread). Stall fraction = time the trainer waits for a batch / (wait + step), first
batch (start-up) excluded and reported apart.

A model of how many workers a trainer needs (``simulate``): workers produce blocks at the measured
per-worker rate (with the measured variability), a bounded prefetch buffer, a trainer consuming a
batch per step; the simulated stall for 1..64 workers and trainers of several speeds, the speeds
measured here plus GPU-class ones. This machine has 2 cores: past 1 worker the pool shares them with
the trainer, so scaling here shows contention, and the simulation shows what a cluster would do.

    .venv/bin/python scripts/bench_dpp.py                   # 10M rows; results/bench_dpp/
    .venv/bin/python scripts/bench_dpp.py --quick           # 200k rows, a smoke test
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _bench_common import REPO_ROOT, format_table, line_chart, machine, write_json
from _fedbench import comma_list

DEFAULT_FILE = Path("/tmp/fedrec-dpp/synth10m.tsv")
DEFAULT_ROWS = 10_000_000
QUICK_ROWS = 200_000
STALL_TARGET = 0.05  # DPP: with enough workers the trainer waits < 5% of its time
GPU_CLASS_RATES = (200_000, 1_000_000)  # samples/s of GPU-class DLRM trainers, for the model
BUFFER_ROWS = 1_000_000  # rows the model lets the pool run ahead of the trainer (~200 MB of Arrow)


# ------------------------------------------------------------------ one run (in a child process)


class AcceleratorStandIn:
    """A trainer whose step takes ``seconds`` of wall time and no CPU (``time.sleep`` releases
    the core), as an accelerator's step leaves the host's cores to the data pipeline."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def step(self, batch) -> float:
        time.sleep(self.seconds)
        return 0.0


def child(spec: dict) -> dict:
    if spec["kind"] == "blocks":
        os.environ["POLARS_MAX_THREADS"] = "1"  # one worker = one core (as the pool's actors run)
        from data_pipeline.preprocess.config import make_config

        return {"block_seconds": _block_seconds(make_config(**spec["config"]))}
    from data_pipeline.preprocess.config import make_config
    from data_pipeline.preprocess.run import TrainerOptions, run_preprocess

    cfg = make_config(**spec["config"])
    kind = spec["kind"]
    steps = -(-spec["rows"] // cfg.batch_size) if spec["rows"] else 1 << 40
    if kind == "dlrm":
        from fedrec.stream_train import make_stream_trainer

        factory, steps = make_stream_trainer, spec["dlrm_steps"]
    else:
        seconds = spec["accel_ms"] / 1000 if kind == "accel" else 0.0
        factory = lambda s, o: AcceleratorStandIn(seconds)  # noqa: E731
    load = os.getloadavg()[0]
    result = run_preprocess(cfg, train_steps=steps, trainer_factory=factory, trainer_options=TrainerOptions(threads=1))
    out = result.to_dict()
    out.pop("config")
    out["load_average_1m"] = [round(load, 2), round(os.getloadavg()[0], 2)]  # before, after
    return out


def _block_seconds(cfg) -> list[float]:
    """Seconds per block of one worker's preprocessing (single-threaded polars), for the model."""
    from data_pipeline.preprocess.transforms import plan_input, process_unit
    from data_pipeline.preprocess.units import split_ranges

    plan = plan_input(cfg)
    times, t = [], time.perf_counter()
    for unit in split_ranges(plan.path, cfg.range_bytes)[:3]:
        for _ in process_unit(cfg, plan, unit):
            now = time.perf_counter()
            times.append(now - t)
            t = now
    return times[:-1]


# ------------------------------------------------------------------ the model


def simulate(
    workers: int, worker_rows_per_s: float, cv: float, trainer_rows_per_s: float, batch: int,
    block_rows: int, buffer_rows: int = BUFFER_ROWS, steps: int = 4_000, seed: int = 0,
) -> float:
    """Steady-state stall fraction of a trainer fed by ``workers`` workers (discrete events).

    Each worker turns out blocks of ``block_rows`` rows, one after another, each taking
    ``block_rows / worker_rows_per_s`` seconds times a log-normal factor with coefficient of
    variation ``cv``. Back-pressure: block ``j`` cannot start before block ``j - capacity`` was
    taken by the trainer (``capacity`` = the blocks ``buffer_rows`` hold, plus one in flight per
    worker; Ray Data bounds what runs ahead by object-store bytes, ~1M Criteo rows here). The
    trainer takes ``batch`` rows per step of ``batch / trainer_rows_per_s`` seconds, from blocks
    in the order they finish, and waits when fewer rows are ready. The stall is counted over the
    second half of the steps: the steady state, past the ramp-up of workers that all start at once.
    """
    rng = np.random.default_rng(seed)
    sigma = math.sqrt(math.log(1 + cv**2))
    block_time = block_rows / worker_rows_per_s
    step_time = batch / trainer_rows_per_s
    capacity = -(-buffer_rows // block_rows) + workers
    free_at = [0.0] * workers
    done: list[float] = []  # finish times of every block started so far, sorted
    taken_at: list[float] = []  # when the trainer took its i-th block (blocks are taken as they finish)
    trainer = waited = 0.0
    started_at = 0.0
    counted_from = steps // 2

    def earliest_start() -> tuple[int, float]:
        w = int(np.argmin(free_at))
        j = len(done)
        if j < capacity:
            return w, free_at[w]
        freed = taken_at[j - capacity] if j - capacity < len(taken_at) else math.inf  # back-pressure
        return w, max(free_at[w], freed)

    for step in range(steps):
        need = -(-(step + 1) * batch // block_rows)  # blocks this step reads from
        while True:  # start every block a worker could have started by now, and any still needed
            w, start = earliest_start()
            if len(done) >= need and start > trainer:
                break
            start = trainer if math.isinf(start) else start
            finish = start + block_time * float(rng.lognormal(-(sigma**2) / 2, sigma))
            free_at[w] = finish
            done.insert(int(np.searchsorted(done, finish)), finish)
        ready = done[need - 1]  # the need-th block to finish: consumption in finish order
        begin = max(trainer, ready)
        if step == counted_from:
            started_at = trainer
        if step >= counted_from:
            waited += begin - trainer
        taken_at.extend([begin] * (need - len(taken_at)))
        trainer = begin + step_time
    busy = trainer - started_at  # the counted steps: their waits and their steps
    return waited / busy if busy > 0 else 0.0


def workers_needed(target: float, **kw) -> int | None:
    for n in range(1, 129):
        if simulate(n, **kw) < target:
            return n
    return None


# ------------------------------------------------------------------ driver


def ensure_file(path: Path, rows: int) -> Path:
    if path.exists():
        return path
    print(f"generating {rows:,} rows -> {path} (fedrec data synth)", file=sys.stderr)
    subprocess.run(
        [str(Path(sys.executable).parent / "fedrec"), "data", "synth", "--rows", str(rows), "--max-cardinality",
         "100000", "--seed", "0", "--out", str(path)],
        check=True, cwd=REPO_ROOT,
    )  # fmt: skip
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--file", type=Path, default=DEFAULT_FILE, help="Criteo TSV (made with fedrec data synth if missing)")
    ap.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rows to generate when --file is missing")
    ap.add_argument("--workers", type=comma_list(int), default="0,1,2,4")
    ap.add_argument("--rows-per-run", type=int, default=2_000_000, help="rows each run streams (0: the whole file)")
    ap.add_argument("--kinds", default="prep,accel,dlrm")
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--buckets", type=int, default=10_000)
    ap.add_argument("--accel-ms", type=float, default=20.0, help="stand-in accelerator step per batch")
    ap.add_argument("--dlrm-steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows, workers 0,1,2, 20 DLRM steps")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "bench_dpp")
    ap.add_argument("--resume", action="store_true", help="keep the runs already in OUT/runs.jsonl")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:  # the result goes to a file: Ray's processes may write to our stdout too
        Path(args.result).write_text(json.dumps(child(json.loads(args.child))))
        return 0
    if args.quick:
        args.file = args.out / "quick.tsv" if args.file == DEFAULT_FILE else args.file
        args.rows, args.workers, args.dlrm_steps, args.rows_per_run = QUICK_ROWS, [0, 1, 2], 20, 0
    workers = args.workers
    kinds = args.kinds.split(",")
    path = ensure_file(args.file, args.rows)
    base = {"input": str(path), "format": "criteo", "batch_size": args.batch_size, "buckets": args.buckets}
    blocks = _run_with_retries({"kind": "blocks", "config": {**base, "max_workers": 0, "min_workers": 0}})
    log = args.out / "runs.jsonl"
    runs = [json.loads(line) for line in log.read_text().splitlines()] if args.resume and log.exists() else []
    if not args.resume:
        log.unlink(missing_ok=True)
    have = {(r["kind"], r["workers"], r["repeat"]) for r in runs}
    for repeat in range(args.repeats):
        for kind in kinds:
            for w in workers:
                if (kind, w, repeat) in have:
                    continue
                spec = {
                    "kind": kind, "accel_ms": args.accel_ms, "dlrm_steps": args.dlrm_steps, "rows": args.rows_per_run,
                    "config": {**base, "min_workers": w, "max_workers": w},
                }  # fmt: skip
                t = time.perf_counter()
                result = _run_with_retries(spec)
                result.update(kind=kind, repeat=repeat, wall_seconds=time.perf_counter() - t)
                runs.append(result)
                log.parent.mkdir(parents=True, exist_ok=True)
                with open(log, "a") as fh:  # kept as we go: --resume picks up after a crash
                    fh.write(json.dumps(result) + "\n")
                print(_line(result), file=sys.stderr)
    record = summarize(runs, workers, kinds, args, blocks["block_seconds"])
    record["machine"] = machine()
    write_json(args.out / "bench_dpp.json", record)
    print(record["table"])
    print(record["model_table"])
    plot(record, args.out / "bench_dpp.png")
    return 0


def _run_with_retries(spec: dict, attempts: int = 3) -> dict:
    """A run in a fresh process; on a saturated machine Ray sometimes misses its start-up window,
    so a failed start is retried (the failure is not a measurement)."""
    import tempfile

    for attempt in range(1, attempts + 1):
        with tempfile.TemporaryDirectory() as tmp:
            result = Path(tmp) / "result.json"
            proc = subprocess.run(
                [sys.executable, __file__, "--child", json.dumps(spec), "--result", str(result)],
                capture_output=True, text=True, timeout=3600, cwd=REPO_ROOT,
            )  # fmt: skip
            if proc.returncode == 0 and result.exists():
                return json.loads(result.read_text())
        if attempt == attempts or "could not start" not in proc.stderr:
            raise RuntimeError(f"run {spec['kind']} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
        print(f"  Ray did not start (attempt {attempt}); retrying", file=sys.stderr)
    raise AssertionError("unreachable")


def _line(r: dict) -> str:
    stall = r.get("trainer_stall_fraction")
    return (
        f"{r['kind']:5s} workers={r['workers']} rows={r['rows']:,} {r['rows_per_second']:,.0f} rows/s"
        + (f" stall={stall:.3f}" if stall is not None else "")
    )


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    return (float(arr.mean()), float(arr.std())) if arr.size else (float("nan"), float("nan"))


def summarize(runs: list[dict], workers: list[int], kinds: list[str], args, blocks: list[float]) -> dict:
    rows, cells = [], {}
    for kind in kinds:
        for w in workers:
            mine = [r for r in runs if r["kind"] == kind and r["workers"] == w]
            rate = _mean_std([r["rows_per_second"] for r in mine])
            steady = _mean_std([r["steady_rows_per_second"] for r in mine])
            stall = _mean_std([r["trainer_stall_fraction"] for r in mine])
            train = _mean_std([r["train_samples_per_second"] for r in mine])
            cells[(kind, w)] = {"rows_per_second": rate, "steady_rows_per_second": steady, "stall": stall,
                                "train_samples_per_second": train}  # fmt: skip
            rows.append([
                kind, "on-trainer" if w == 0 else str(w), mine[0]["rows"], rate[0], rate[1], steady[0],
                train[0], stall[0], stall[1], mine[0]["first_batch_seconds"], mine[0]["load_average_1m"][0],
            ])  # fmt: skip
    headers = ["trainer", "workers", "rows", "rows/s", "±", "steady rows/s", "trainer samples/s", "stall", "±",
               "start-up s", "load"]  # fmt: skip
    table = format_table(headers, rows, [None, None, ",d", ",.0f", ",.0f", ",.0f", ",.0f", ".3f", ".3f", ".1f", ".1f"])
    model = model_rows(runs, args, blocks)
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "child"}
    params["workers"] = ",".join(map(str, args.workers))  # recorded as a comma-separated string, as before
    return {
        "runs": runs,
        "summary": {f"{k}/{w}": v for (k, w), v in cells.items()},
        "table": table,
        "model": model["rows"],
        "model_table": model["table"],
        "params": params,
        "stall_target": STALL_TARGET,
    }


def model_rows(runs: list[dict], args, blocks: list[float]) -> dict:
    """Workers needed for a stall under the target, by simulation, for trainers of several speeds;
    per-worker rate and its variability from the single-threaded block timings measured here."""
    block_rows = 50_000
    if blocks:
        per_block = np.asarray(blocks)
        worker_rate = block_rows / float(per_block.mean())
        cv = float(per_block.std() / per_block.mean())
    else:
        worker_rate, cv = float("nan"), 0.0
    trainers = {"accel stand-in (measured)": args.batch_size / (args.accel_ms / 1000)}
    dlrm = [r for r in runs if r["kind"] == "dlrm" and r["trainer_step_seconds"]]
    if dlrm:
        r = dlrm[0]
        trainers["CPU DLRM (measured)"] = (r["train_steps"] - 1) * args.batch_size / r["trainer_step_seconds"]
    for rate in GPU_CLASS_RATES:
        trainers[f"GPU-class {rate:,}/s"] = float(rate)
    rows, out = [], []
    for name, rate in trainers.items():
        kw = dict(worker_rows_per_s=worker_rate, cv=cv, trainer_rows_per_s=rate, batch=args.batch_size,
                  block_rows=block_rows)  # fmt: skip
        need = workers_needed(STALL_TARGET, **kw) if math.isfinite(worker_rate) else None
        curve = {n: simulate(n, **kw) for n in (1, 2, 4, 8, 16, 32)} if math.isfinite(worker_rate) else {}
        ratio = rate / worker_rate if math.isfinite(worker_rate) else float("nan")
        out.append({"trainer": name, "trainer_rows_per_s": rate, "rate_ratio": ratio, "workers_needed": need,
                    "stall_by_workers": curve})  # fmt: skip
        rows.append([name, rate, ratio, need if need is not None else "> 128", math.ceil(ratio / (1 - STALL_TARGET)),
                     *[curve.get(n, float("nan")) for n in (1, 2, 4, 8)]])  # fmt: skip
    headers = ["trainer", "samples/s", "/ worker rate", f"workers for stall < {STALL_TARGET:.0%}", "rate model",
               "stall@1", "@2", "@4", "@8"]  # fmt: skip
    table = f"per worker: {worker_rate:,.0f} rows/s (block time CV {cv:.2f})\n" + format_table(
        headers, rows, [None, ",.0f", ".2f", None, None, ".3f", ".3f", ".3f", ".3f"]
    )
    return {"rows": {"worker_rows_per_s": worker_rate, "block_cv": cv, "trainers": out}, "table": table}


def plot(record: dict, path: Path) -> None:
    summary = record["summary"]
    kinds = sorted({k.split("/")[0] for k in summary})
    workers = sorted({int(k.split("/")[1]) for k in summary})
    series = {}
    for kind in kinds:
        if kind != "prep":
            series[f"{kind}: stall fraction"] = [summary[f"{kind}/{w}"]["stall"][0] for w in workers]
    line_chart(path, workers, series, "preprocessing workers (0 = on the trainer)", "trainer stall fraction",
               "Trainer stall vs preprocessing workers (2-core machine)")  # fmt: skip
    rates = {k: [summary[f"{k}/{w}"]["steady_rows_per_second"][0] for w in workers] for k in kinds}
    line_chart(path.with_name("bench_dpp_throughput.png"), workers, rates, "preprocessing workers (0 = on the trainer)",
               "rows/s after the first batch", "Samples/s vs preprocessing workers (2-core machine)")  # fmt: skip
    model = record["model"]["trainers"]
    ns = (1, 2, 4, 8, 16, 32)
    line_chart(path.with_name("bench_dpp_model.png"), ns,
               {m["trainer"]: [m["stall_by_workers"].get(n, float("nan")) for n in ns] for m in model},
               "preprocessing workers", "simulated stall fraction",
               "Model: workers a trainer needs (per-worker rate measured here)")  # fmt: skip


if __name__ == "__main__":
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    sys.exit(main())
