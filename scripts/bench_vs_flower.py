"""fedrec vs Flower 1.40 on ml100k-fed: the same model, data, hyper-parameters and client updates,
timed by two like-for-like clocks.

Both frameworks run the workload of --config (default configs/ml100k_tuned.yaml: MovieLens-100K,
943 clients one per user, TorchRec DLRM with dim-16 embeddings, FedYogi on the server, the tuned client
SGD settings) for --rounds rounds of --clients-per-round clients on the same --cpus CPUs (2 Ray workers
of 1 CPU), with no client dropout, no client-side evaluation and one evaluation of the final model (AUC and
log loss on the test split: fedrec's full-catalogue HR@10/nDCG@10, which Flower's app does not
compute, is off, `eval_ranking: false`), each in its own process:

  Flower    flwr[simulation]==1.40.0 in its own venv (.bench_venvs/flower: flwr pins ray 2.55.1,
            the project has 2.60.0), created on first use and re-used while its marker matches the
            pins. scripts/_flower_app.py: clients train with fedrec's per-client TorchRec path
            (LocalTrainer.train) on a per-worker cached trainer, return full parameters, and Flower's
            own strategy (FedAvg, FedYogi, FedAdam or FedAdagrad) aggregates them. Two idioms:
            NumPyClient (flwr.server.strategy) and the Message API (flwr.serverapp.strategy); ratios
            are against the faster one. By default Flower's sampled nodes train the clients fedrec's
            sampler picks for each round (--client-sampling same).
  fedrec    `python -m fedrec.cli train --config ... --json ...` in a fresh process: batched client
            training with sparse row updates (the default), whole-table uploads
            (client.sparse_updates false), and the per-client TorchRec path (client.batched false:
            the same client code as the Flower rows, so that row compares the frameworks alone).

The two clocks:
  steady state   client updates / s over rounds 2..R, each side's own per-round wall times (from
                 selecting clients to the aggregated model, evaluation excluded).
  whole process  client updates / s over the process's whole life, measured from outside: imports,
                 Ray start, data loading, actor/worker start, all rounds, the final evaluation.

The server optimizers differ in one detail: fedrec's FedOpt updates embedding rows lazily (rows no
client touched keep their moments and do not move), Flower's updates every coordinate; so final AUCs
are reported side by side, not required equal. Runs are interleaved and repeated (--repeats, median
reported) since the machine is shared. Prints a table, writes results/bench_vs_flower/bench_vs_flower.{json,png}.

  .venv/bin/python scripts/bench_vs_flower.py            # 30 rounds x 50 clients, both frameworks
  .venv/bin/python scripts/bench_vs_flower.py --quick    # 3 x 10, both frameworks
  .venv/bin/python scripts/bench_vs_flower.py --skip-flower
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FLOWER_VERSION = "1.40.0"
FLOWER_RAY = "2.55.1"  # flwr[simulation]==1.40.0 pins it; the project's .venv has ray 2.60.0
VENV_DIR = ROOT / ".bench_venvs" / "flower"
MARKER = ".bench-marker.json"
# What fedrec.model / data_pipeline / LocalTrainer import. torch and fbgemm first so nothing later can
# pull a CUDA torch; torchrec without deps (it names the CUDA fbgemm-gpu package). Versions come from
# requirements/constraints.txt filtered to these names, leaving flwr's own pins (ray, protobuf,
# packaging) to flwr.
TORCH_STACK = ("torch==2.13.0", "fbgemm-gpu-cpu==1.8.0")
TORCHREC = "torchrec==1.8.0"
MODEL_DEPS = ("tensordict", "torchmetrics", "tqdm", "pyre-extensions", "iopath", "numpy", "pandas", "pyarrow",
              "polars", "scikit-learn", "pyyaml")
FLOWER_APIS = {"numpy": "Flower 1.40 NumPyClient", "message": "Flower 1.40 Message API"}
FLOWER_STRATEGIES = ("fedavg", "fedyogi", "fedadam", "fedadagrad")  # strategies both frameworks have
# fedrec rows: label -> client-config overrides.
FEDREC_VARIANTS = {
    "fedrec (batched, sparse rows)": {},
    "fedrec (batched, whole-table)": {"sparse_updates": False},
    "fedrec (per-client TorchRec)": {"batched": False},
}
TARGETS = {"steady": 10.0, "whole": 5.0}  # the targets: x Flower on each clock
AUC_TOLERANCE = 0.01


# --- one workload, two frameworks ---------------------------------------------------------------


def bench_config(path: str | Path, rounds: int, clients_per_round: int):
    """The config both frameworks run: the YAML's workload with the benchmark's rounds and clients,
    evaluation of the final model only, AUC and log loss as Flower's app scores it (no ranking
    over the catalogue), and no client dropout (Flower's simulation has none)."""
    from fedrec.config import load_config

    cfg = load_config(path)
    tiers = [{**t.model_dump(), "dropout": 0.0} for t in cfg.tiers.tiers]
    cfg = cfg.with_(rounds=rounds, clients_per_round=clients_per_round, eval_every=rounds, eval_ranking=False,
                    tiers=tiers, deadline=None, over_selection=0.0, checkpoint_dir=None, checkpoint_every=0, plot=None,
                    target_auc=None, tensorboard=None)
    check_flower_expressible(cfg)
    return cfg


def check_flower_expressible(cfg) -> None:
    """Flower's strategies with our LocalTrainer are exactly this family: refuse anything else."""
    problems = []
    if cfg.mode != "sync":
        problems.append(f"mode={cfg.mode!r} (need 'sync')")
    if cfg.strategy.name not in FLOWER_STRATEGIES:
        problems.append(f"strategy {cfg.strategy.name} (need one of {FLOWER_STRATEGIES})")
    if cfg.strategy.name == "fedavg" and cfg.strategy.server_lr != 1.0:
        problems.append(f"fedavg with server_lr {cfg.strategy.server_lr} (Flower's FedAvg has none: need 1.0)")
    if cfg.client.proximal_mu != 0:
        problems.append(f"client.proximal_mu={cfg.client.proximal_mu} (need 0)")
    if cfg.sampling != "uniform":
        problems.append(f"sampling={cfg.sampling!r} (need 'uniform')")
    if any(t.dropout for t in cfg.tiers.tiers) or cfg.deadline is not None or cfg.over_selection:
        problems.append("client dropout, deadline or over-selection (Flower's simulation has none)")
    if problems:
        raise ValueError("config cannot be run the same way by Flower: " + "; ".join(problems))


def workload(cfg) -> dict:
    """The hyper-parameters that define the workload (identical on both sides); not the fedrec-only
    execution and accounting switches (client.batched, client.sparse_updates, client.sparse_downloads)
    or the simulated clock. ``cfg``: a
    FederatedConfig or its ``config_to_dict`` (what the Flower side reports back)."""
    from fedrec.config import config_to_dict

    d = json.loads(json.dumps(cfg if isinstance(cfg, dict) else config_to_dict(cfg), default=str))
    client = {k: v for k, v in d["client"].items() if k not in ("batched", "sparse_updates", "sparse_downloads")}
    return {"data": d["data"], "model": d["model"], "client": client, "strategy": d["strategy"], "rounds": d["rounds"],
            "clients_per_round": d["clients_per_round"], "sampling": d["sampling"], "seed": d["seed"]}


def check_same_workload(a, b) -> None:
    wa, wb = workload(a), workload(b)
    diff = sorted(k for k in wa if wa[k] != wb[k])
    if diff:
        raise ValueError(f"the frameworks would run different workloads: {', '.join(diff)} differ")


def client_schedule(cfg, data) -> list[list[int]]:
    """The clients fedrec trains in each round (its own selection code), for Flower to train too."""
    from fedrec.runtime.run import FederatedRun

    run = FederatedRun(cfg, data, None)
    return [[int(c) for c in run.select(rnd)[0]] for rnd in range(1, cfg.rounds + 1)]


def variant(cfg, overrides: dict):
    return cfg.with_(**{f"client.{k}": v for k, v in overrides.items()}) if overrides else cfg


# --- the Flower venv ------------------------------------------------------------------------------


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def model_constraints(text: str, names=MODEL_DEPS + ("torch", "fbgemm-gpu-cpu", "torchrec")) -> list[str]:
    """Lines of a constraints file that pin ``names``."""
    wanted = {_norm(n) for n in names}
    lines = (line.split("#")[0].strip() for line in text.splitlines())
    return [line for line in lines if "==" in line and _norm(line.split("==")[0]) in wanted]


def venv_marker(constraints: list[str]) -> dict:
    return {"flwr": FLOWER_VERSION, "ray": FLOWER_RAY, "torch_stack": list(TORCH_STACK), "torchrec": TORCHREC,
            "model_deps": list(MODEL_DEPS), "python": ".".join(map(str, sys.version_info[:2])),
            "constraints": hashlib.sha256("\n".join(constraints).encode()).hexdigest()}


def ensure_flower_venv(venv: Path = VENV_DIR) -> Path:
    """The Flower venv's python, creating the venv (pip, minutes) unless a matching one is there."""
    pins = model_constraints((ROOT / "requirements" / "constraints.txt").read_text())
    marker, py, mpath = venv_marker(pins), venv / "bin" / "python", venv / MARKER
    if py.exists() and mpath.exists() and json.loads(mpath.read_text()) == marker:
        return py
    log(f"creating the Flower venv at {venv} (flwr[simulation]=={FLOWER_VERSION}, ray {FLOWER_RAY}): a few minutes")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    cpath = venv / "model-constraints.txt"
    cpath.write_text("\n".join(pins) + "\n")
    pip = [str(py), "-m", "pip", "install", "-q"]
    for cmd in ([*pip, "--upgrade", "pip", "setuptools", "wheel"],
                [*pip, "-c", str(cpath), *TORCH_STACK],
                [*pip, "--no-deps", TORCHREC],
                [*pip, "-c", str(cpath), f"flwr[simulation]=={FLOWER_VERSION}", f"ray=={FLOWER_RAY}", *MODEL_DEPS],
                [*pip, "--no-deps", "-e", str(ROOT)]):
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
            raise SystemExit(
                f"bench_vs_flower: could not create the Flower venv at {venv}: `pip {' '.join(cmd[3:])}` failed.\n"
                f"{tail}\nIt needs a package index with flwr[simulation]=={FLOWER_VERSION} and ray=={FLOWER_RAY} "
                f"(offline, this cannot work); run with --skip-flower for the fedrec rows only."
            )
    mpath.write_text(json.dumps(marker, indent=2))
    return py


# --- runs -----------------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"bench_vs_flower: {msg}", file=sys.stderr, flush=True)


def _timed(cmd: list[str], log_path: Path, env: dict | None = None) -> float:
    """Run ``cmd`` to completion; its wall seconds from process start to exit."""
    start = time.perf_counter()
    with open(log_path, "w") as logf:
        code = subprocess.run(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=ROOT).returncode
    seconds = time.perf_counter() - start
    if code != 0:
        tail = "\n".join(log_path.read_text().splitlines()[-15:])
        raise SystemExit(f"bench_vs_flower: {cmd[1:3]} failed (exit {code}); log {log_path}:\n{tail}")
    return seconds


def run_fedrec(cfg, cpus: int, out: Path) -> dict:
    """One fedrec run, ``fedrec train --config`` in a fresh process (its whole life is the clock)."""
    import yaml

    from fedrec.config import config_to_dict

    out.mkdir(parents=True, exist_ok=True)
    path = out / "config.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(cfg.with_(num_actors=cpus, checkpoint_dir=str(out / "ckpt")))))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    cmd = [sys.executable, "-m", "fedrec.cli", "train", "--config", str(path), "--json", str(out / "result.json")]
    process = _timed(cmd, out / "fedrec.log", env)
    result = json.loads((out / "result.json").read_text())
    rounds = [{k: h[k] for k in ("round", "client_updates", "wall_seconds")} for h in result["history"]]
    return {"rounds": rounds, "process_seconds": process, "auc": result["final_auc"], "logloss": result["final_logloss"]}


def run_flower(py: Path, cfg, cpus: int, api: str, out: Path, schedule: list[list[int]] | None) -> dict:
    """One Flower simulation in the Flower venv, in its own process; it scores its final model itself."""
    from fedrec.config import config_to_dict

    out.mkdir(parents=True, exist_ok=True)
    spec = out / "spec.json"
    spec.write_text(json.dumps({"config": config_to_dict(cfg), "cpus": cpus, "schedule": schedule}, default=str))
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0"}
    cmd = [str(py), str(ROOT / "scripts" / "_flower_app.py"), "--spec", str(spec), "--out", str(out), "--api", api]
    process = _timed(cmd, out / "flower.log", env)
    info = json.loads((out / "flower.json").read_text())
    check_same_workload(cfg, info["config"])  # what Flower actually ran
    return {"rounds": info["rounds"], "process_seconds": process, "auc": info["auc"], "logloss": info["logloss"],
            "versions": {k: info[k] for k in ("flwr", "ray", "torch")}}


# --- numbers --------------------------------------------------------------------------------------


def summarize(rounds: list[dict], process_seconds: float, workers: int = 1) -> dict:
    """Both clocks from per-round (client_updates, wall_seconds) and the process's wall time:
    steady state leaves out round 1, which carries each framework's lazy start-up (Flower's workers
    build their trainer and load the data on their first client); the whole process counts every
    second from start to exit. Where rounds say how long their clients trained (client_seconds:
    Flower's), ``client_busy`` is that over the ``workers``' steady time."""
    updates = sum(r["client_updates"] for r in rounds)
    steady_updates = updates - rounds[0]["client_updates"]
    steady_seconds = sum(r["wall_seconds"] for r in rounds[1:])
    out = {"rounds": len(rounds), "client_updates": updates, "process_seconds": process_seconds,
           "first_round_seconds": rounds[0]["wall_seconds"], "steady_seconds": steady_seconds,
           "steady_updates_per_second": steady_updates / steady_seconds if steady_seconds > 0 else float("nan"),
           "whole_updates_per_second": updates / process_seconds}
    if steady_seconds > 0 and all("client_seconds" in r for r in rounds):
        out["client_busy"] = sum(r["client_seconds"] for r in rounds[1:]) / (workers * steady_seconds)
    return out


NUMERIC = ("process_seconds", "first_round_seconds", "steady_seconds", "steady_updates_per_second",
           "whole_updates_per_second", "auc", "logloss")


def median_row(label: str, framework: str, runs: list[dict]) -> dict:
    """One table row: the median of each number over the repeats (rounds and updates must agree)."""
    counts = {(r["rounds"], r["client_updates"]) for r in runs}
    if len(counts) != 1:
        raise ValueError(f"{label}: repeats ran different rounds/updates {sorted(counts)}")
    (rounds, updates), = counts
    row = {"label": label, "framework": framework, "rounds": rounds, "client_updates": updates, "repeats": len(runs)}
    row.update({k: statistics.median(r[k] for r in runs) for k in NUMERIC})
    if all("client_busy" in r for r in runs):
        row["client_busy"] = statistics.median(r["client_busy"] for r in runs)
    return row


def add_ratios(rows: list[dict]) -> dict | None:
    """fedrec/Flower ratios on both clocks against the faster Flower row (by steady state);
    returns that reference row, or None without Flower rows."""
    flower = [r for r in rows if r["framework"] == "flower"]
    if not flower:
        return None
    ref = max(flower, key=lambda r: (_finite(r["steady_updates_per_second"]), r["whole_updates_per_second"]))
    for r in rows:
        r["x_flower_steady"] = r["steady_updates_per_second"] / ref["steady_updates_per_second"]
        r["x_flower_whole"] = r["whole_updates_per_second"] / ref["whole_updates_per_second"]
        r["auc_minus_flower"] = r["auc"] - ref["auc"]
    return ref


def _finite(x: float) -> float:
    return x if x == x else -1.0


def verdicts(rows: list[dict], targets: dict = TARGETS, tolerance: float = AUC_TOLERANCE) -> list[dict]:
    """Per fedrec row: x Flower on each clock against its target, and whether the AUCs agree."""
    out = []
    for r in rows:
        if r["framework"] != "fedrec" or "x_flower_steady" not in r:
            continue
        out.append({"label": r["label"], "x_flower_steady": r["x_flower_steady"], "x_flower_whole": r["x_flower_whole"],
                    "auc_minus_flower": r["auc_minus_flower"], "same_auc": abs(r["auc_minus_flower"]) <= tolerance,
                    "met_steady": r["x_flower_steady"] >= targets["steady"],
                    "met_whole": r["x_flower_whole"] >= targets["whole"]})
    return out


COLUMNS = (("framework", "label", "{}"), ("rounds", "rounds", "{}"), ("updates", "client_updates", "{}"),
           ("process s", "process_seconds", "{:.1f}"), ("round 1 s", "first_round_seconds", "{:.1f}"),
           ("steady upd/s", "steady_updates_per_second", "{:.1f}"), ("whole upd/s", "whole_updates_per_second", "{:.1f}"),
           ("AUC", "auc", "{:.4f}"), ("x Flower steady", "x_flower_steady", "{:.1f}x"),
           ("x Flower whole", "x_flower_whole", "{:.1f}x"), ("AUC - Flower", "auc_minus_flower", "{:+.4f}"))


def format_table(rows: list[dict]) -> str:
    cols = [c for c in COLUMNS if any(c[1] in r for r in rows)]
    cells = [[c[0] for c in cols]] + [[c[2].format(r[c[1]]) if c[1] in r else "-" for c in cols] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(cols))]
    fmt = lambda line: "  ".join(s.ljust(w) if i == 0 else s.rjust(w) for i, (s, w) in enumerate(zip(line, widths)))  # noqa: E731
    return "\n".join([fmt(cells[0]), "  ".join("-" * w for w in widths), *map(fmt, cells[1:])])


def format_verdicts(rows: list[dict], vs: list[dict], ref: dict | None) -> str:
    if ref is None:
        return "no Flower rows (--skip-flower): no ratios"
    lines = [f"{r['label']}: its clients spend {r['client_busy']:.0%} of the workers' steady round time in "
             f"LocalTrainer.train (the rest is the simulation engine)" for r in rows if "client_busy" in r]
    lines.append(f"ratios against {ref['label']} (the faster Flower idiom in steady state)")
    for v in vs:
        lines.append(f"{v['label']}: steady {v['x_flower_steady']:.1f}x (target {TARGETS['steady']:.0f}x: "
                     f"{'met' if v['met_steady'] else 'NOT met'}), whole process {v['x_flower_whole']:.1f}x "
                     f"(target {TARGETS['whole']:.0f}x: {'met' if v['met_whole'] else 'NOT met'}), "
                     f"AUC {v['auc_minus_flower']:+.4f}")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, strategy: str) -> None:
    import numpy as np
    from _fedbench import pyplot, save
    from matplotlib.ticker import NullFormatter

    plt = pyplot()

    labels = [r["label"] for r in rows]
    y = np.arange(len(rows))
    colors = ["tab:orange" if r["framework"] == "flower" else "tab:blue" for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 0.6 * len(rows) + 2), sharey=True)
    ax1.barh(y - 0.2, [r["steady_updates_per_second"] for r in rows], 0.4, color=colors)
    ax1.barh(y + 0.2, [r["whole_updates_per_second"] for r in rows], 0.4, color=colors, alpha=0.5, hatch="//")
    for x, r in zip(y, rows):
        ax1.annotate(f"{r['steady_updates_per_second']:.0f} / {r['whole_updates_per_second']:.0f}",
                     (r["steady_updates_per_second"], x - 0.2), xytext=(3, -3), textcoords="offset points", fontsize=8)
    ax1.set_xscale("log")
    ax1.xaxis.set_minor_formatter(NullFormatter())  # the bars carry their numbers
    ax1.set_xlabel("client updates / s (log): solid steady state (rounds 2+), hatched whole process")
    ax2.barh(y, [r["auc"] for r in rows], 0.5, color=colors)
    lo = min(r["auc"] for r in rows)
    ax2.set_xlim(max(0.0, lo - 0.02), max(r["auc"] for r in rows) + 0.01)
    ax2.set_xlabel("final test AUC (same evaluation code, in each run's own process)")
    ax1.set_yticks(y, labels)
    ax1.invert_yaxis()  # table order, top to bottom
    for ax in (ax1, ax2):
        ax.grid(axis="x", alpha=0.3)
    r0 = rows[0]
    fig.suptitle(f"ml100k-fed: {r0['rounds']} rounds, {r0['client_updates']} client updates, {strategy}")
    path.parent.mkdir(parents=True, exist_ok=True)
    save(fig, path)


# --- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "ml100k_tuned.yaml"))
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--clients-per-round", type=int, default=50)
    p.add_argument("--quick", action="store_true", help="3 rounds x 10 clients, one repeat, both frameworks")
    p.add_argument("--skip-flower", action="store_true", help="fedrec rows only (no Flower venv)")
    p.add_argument("--flower-apis", default="numpy,message", help=f"comma list of {sorted(FLOWER_APIS)}")
    p.add_argument("--repeats", type=int, default=None, help="runs per row, median reported (default 2; --quick 1)")
    p.add_argument("--client-sampling", choices=("same", "flower"), default="same",
                   help="same: Flower trains the clients fedrec samples each round; flower: Flower's own random choice")
    p.add_argument("--cpus", type=int, default=2, help="CPUs given to each framework's Ray (1 per client worker)")
    p.add_argument("--out-dir", default=str(ROOT / "results" / "bench_vs_flower"))
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.clients_per_round = 3, 10
    args.repeats = args.repeats or (1 if args.quick else 2)
    args.flower_apis = [a for a in args.flower_apis.split(",") if a]
    bad = [a for a in args.flower_apis if a not in FLOWER_APIS]
    if bad or (not args.skip_flower and not args.flower_apis):
        p.error(f"--flower-apis: expected some of {sorted(FLOWER_APIS)}, got {bad or 'none'}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.pop("RAY_ADDRESS", None)  # a local benchmark: both frameworks start their own Ray
    cfg = bench_config(args.config, args.rounds, args.clients_per_round)
    out = Path(args.out_dir)
    py = None if args.skip_flower else ensure_flower_venv()

    from fedrec.runtime.data import load_federated_data

    data = load_federated_data(cfg)  # for the schedule only; each run loads its own
    schedule = client_schedule(cfg, data) if args.client_sampling == "same" else None
    plan = [] if args.skip_flower else [(FLOWER_APIS[a], "flower", a) for a in args.flower_apis]
    plan += [(label, "fedrec", overrides) for label, overrides in FEDREC_VARIANTS.items()]
    runs: dict[str, list[dict]] = {label: [] for label, _, _ in plan}
    for rep in range(args.repeats):
        for i, (label, framework, how) in enumerate(plan):  # interleaved, so drifting machine load hits every row
            where = out / "runs" / f"{framework}-{i}-{rep + 1}"
            if framework == "flower":
                run = run_flower(py, cfg, args.cpus, how, where, schedule)
            else:
                run = run_fedrec(variant(cfg, how), args.cpus, where)
            run.update(summarize(run["rounds"], run["process_seconds"], args.cpus))
            runs[label].append(run)
            out.mkdir(parents=True, exist_ok=True)  # what finished survives a killed invocation
            (out / "runs.partial.json").write_text(json.dumps(runs, indent=2, default=float))
            log(f"[{rep + 1}/{args.repeats}] {label}: {run['client_updates']} updates, process {run['process_seconds']:.1f} s "
                f"(round 1 {run['first_round_seconds']:.1f} s), steady {run['steady_updates_per_second']:.1f}/s, "
                f"whole {run['whole_updates_per_second']:.1f}/s, AUC {run['auc']:.4f}")
    rows = [median_row(label, framework, runs[label]) for label, framework, _ in plan]
    expected = cfg.rounds * cfg.clients_per_round
    wrong = [r["label"] for r in rows if r["client_updates"] != expected]
    if wrong:
        raise SystemExit(f"bench_vs_flower: {wrong} did not make {expected} client updates")
    ref = add_ratios(rows)
    vs = verdicts(rows)
    print(f"ml100k-fed, {cfg.rounds} rounds x {cfg.clients_per_round} clients ({expected} client updates), "
          f"{args.cpus} CPUs, median of {args.repeats}, client sampling: {args.client_sampling}")
    print(format_table(rows))
    print(format_verdicts(rows, vs, ref))
    import ray
    import torch

    doc = {"command": " ".join(["scripts/bench_vs_flower.py", *(argv if argv is not None else sys.argv[1:])]),
           "workload": workload(cfg), "cpus": args.cpus, "repeats": args.repeats, "client_sampling": args.client_sampling,
           "versions": {"fedrec": {"ray": ray.__version__, "torch": torch.__version__},
                        "flower": next((r["versions"] for rs in runs.values() for r in rs if "versions" in r), None)},
           "reference": ref["label"] if ref else None, "rows": rows, "verdicts": vs,
           "runs": {label: rs for label, rs in runs.items()}}
    from _fedbench import write_json

    write_json(out, "bench_vs_flower.json", doc)
    (out / "runs.partial.json").unlink(missing_ok=True)  # all of it is in bench_vs_flower.json
    plot(rows, out / "bench_vs_flower.png", cfg.strategy.name)
    log(f"wrote {out / 'bench_vs_flower.json'} and {out / 'bench_vs_flower.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
