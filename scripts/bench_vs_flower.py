"""fedrec vs Flower 1.40 on ml100k-fed: the same model, data, hyper-parameters and client updates.

Both frameworks run the workload of configs/ml100k_fedavg.yaml (MovieLens-100K, 943 clients one per
user, TorchRec DLRM with dim-16 embeddings, FedAvg, client SGD lr 0.05, 1 local epoch, batch 32,
--clients-per-round clients for --rounds rounds) on the same --cpus CPUs (2 Ray workers of 1 CPU),
with no client dropout, no client-side evaluation and one evaluation at the end:

  Flower    flwr[simulation]==1.40.0 in its own venv (.bench_venvs/flower: flwr pins ray 2.55.1,
            the project has 2.60.0), created on first use and re-used while its marker matches the
            pins. scripts/_flower_app.py: clients train with fedrec's per-client TorchRec path
            (LocalTrainer.train) on a per-worker cached trainer, return full parameters, and Flower's
            FedAvg averages them by example count. Two idioms: NumPyClient (flwr.server.strategy)
            and the Message API (flwr.serverapp.strategy); ratios are against the faster one.
            By default Flower's sampled nodes train the clients fedrec's sampler picks for each
            round (--client-sampling same), so the final models differ only by the arithmetic;
            --client-sampling flower leaves the choice to Flower's random sampling.
  fedrec    FederatedServer(cfg).run() (what fedrec.server.run does; the server object is kept for
            its final state) in this process: batched client training with sparse row updates (the
            default), whole-table FedAvg (client.sparse_updates false: Flower's arithmetic), and the
            per-client TorchRec path (client.batched false).

Every final global model is scored here by the same code (fedrec.model.predict over the test split,
fedrec.metrics.binary_metrics). Runs are interleaved and repeated (--repeats, median reported) since
the machine is shared. Prints a table, writes results/bench_vs_flower/bench_vs_flower.{json,png}.

  .venv/bin/python scripts/bench_vs_flower.py            # 30 rounds x 50 clients, both frameworks
  .venv/bin/python scripts/bench_vs_flower.py --quick    # 3 x 10, both frameworks
  .venv/bin/python scripts/bench_vs_flower.py --skip-flower
"""

from __future__ import annotations

import argparse
import dataclasses
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
# fedrec rows: label -> client-config overrides.
FEDREC_VARIANTS = {
    "fedrec (batched, sparse rows)": {},
    "fedrec (batched, whole-table)": {"sparse_updates": False},
    "fedrec (per-client TorchRec)": {"batched": False},
}
TARGET_X, AUC_TOLERANCE = 10.0, 0.01


# --- one workload, two frameworks ---------------------------------------------------------------


def bench_config(path: str | Path, rounds: int, clients_per_round: int):
    """The config both frameworks run: the YAML's workload with the benchmark's rounds and clients,
    evaluation at the end only and no client dropout (Flower's simulation has none)."""
    from fedrec.client.tiers import TierSpec
    from fedrec.config import load_config

    cfg = load_config(path)
    tiers = TierSpec(tuple(dataclasses.replace(t, dropout=0.0) for t in cfg.tiers.tiers))
    cfg = dataclasses.replace(cfg, rounds=rounds, clients_per_round=clients_per_round, eval_every=rounds, tiers=tiers,
                              deadline=None, over_selection=0.0, checkpoint_dir=None, checkpoint_every=0, plot=None,
                              fault_round=None, target_auc=None)
    check_flower_expressible(cfg)
    return cfg


def check_flower_expressible(cfg) -> None:
    """Flower's FedAvg with our LocalTrainer is exactly this family: refuse anything else."""
    problems = []
    if cfg.mode != "sync":
        problems.append(f"mode={cfg.mode!r} (need 'sync')")
    if cfg.strategy.name.lower() != "fedavg" or cfg.strategy.server_lr != 1.0:
        problems.append(f"strategy {cfg.strategy.name} server_lr {cfg.strategy.server_lr} (need fedavg, 1.0)")
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
    from fedrec.server import FederatedServer

    server = FederatedServer(cfg, data=data)
    return [[int(c) for c in server.select(rnd)[0]] for rnd in range(1, cfg.rounds + 1)]


def variant(cfg, overrides: dict):
    return dataclasses.replace(cfg, client=dataclasses.replace(cfg.client, **overrides)) if overrides else cfg


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


def run_fedrec(cfg, cpus: int) -> tuple[dict, dict]:
    """One fedrec run on a fresh Ray (its start-up counted in the total, as Flower's is)."""
    import ray

    from fedrec.ray_runtime import ensure_ray
    from fedrec.server import FederatedServer

    if ray.is_initialized():
        ray.shutdown()
    start = time.perf_counter()
    ensure_ray(cpus)
    server = FederatedServer(cfg)
    result = server.run(progress=False)
    total = time.perf_counter() - start
    ray.shutdown()
    rounds = [{k: h[k] for k in ("round", "client_updates", "wall_seconds")} for h in result.history]
    return {"rounds": rounds, "total_seconds": total, "self_reported_auc": result.final_auc}, server.state


def run_flower(py: Path, cfg, cpus: int, api: str, out: Path, schedule: list[list[int]] | None) -> tuple[dict, dict]:
    """One Flower simulation in the Flower venv; its final parameters come back as params.npz."""
    import numpy as np
    import torch

    from fedrec.config import config_to_dict

    out.mkdir(parents=True, exist_ok=True)
    spec = out / "spec.json"
    spec.write_text(json.dumps({"config": config_to_dict(cfg), "cpus": cpus, "schedule": schedule}, default=str))
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0"}
    cmd = [str(py), str(ROOT / "scripts" / "_flower_app.py"), "--spec", str(spec), "--out", str(out), "--api", api]
    start = time.perf_counter()
    with open(out / "flower.log", "w") as logf:
        code = subprocess.run(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=ROOT).returncode
    process = time.perf_counter() - start
    if code != 0:
        tail = "\n".join((out / "flower.log").read_text().splitlines()[-15:])
        raise SystemExit(f"bench_vs_flower: the Flower run failed (exit {code}); log {out / 'flower.log'}:\n{tail}")
    info = json.loads((out / "flower.json").read_text())
    check_same_workload(cfg, info["config"])  # what Flower actually ran
    with np.load(out / "params.npz") as z:
        state = {k: torch.from_numpy(z[k].copy()) for k in z.files}
    run = {"rounds": info["rounds"], "total_seconds": info["total_seconds"], "process_seconds": process,
           "versions": {k: info[k] for k in ("flwr", "ray", "torch")}}
    return run, state


def evaluate_state(data, cfg, state) -> dict:
    """Test metrics of a final global model, the same code for every row (FederatedServer.evaluate's)."""
    from fedrec.metrics import binary_metrics
    from fedrec.model import build_dlrm, predict

    model = build_dlrm(data.train.spec, cfg.model, seed=cfg.seed)
    model.load_state_dict(state)
    probs, labels = predict(model, data.test.iter_batches(4096))
    return binary_metrics(labels.numpy(), probs.numpy())


# --- numbers --------------------------------------------------------------------------------------


def summarize(rounds: list[dict], total_seconds: float, workers: int = 1) -> dict:
    """Client updates and their rates from per-round (client_updates, wall_seconds); 'warm' leaves
    out round 1, which carries each framework's lazy start-up (Flower's workers build their
    trainer and load the data on their first client). Where rounds say how long their clients
    trained (client_seconds: Flower's), ``client_busy`` is that over the ``workers``' warm time."""
    updates = sum(r["client_updates"] for r in rounds)
    train = sum(r["wall_seconds"] for r in rounds)
    warm_updates = updates - rounds[0]["client_updates"]
    warm_seconds = train - rounds[0]["wall_seconds"]
    out = {"rounds": len(rounds), "client_updates": updates, "train_seconds": train, "total_seconds": total_seconds,
           "first_round_seconds": rounds[0]["wall_seconds"], "updates_per_second": updates / train if train else 0.0,
           "warm_updates_per_second": warm_updates / warm_seconds if len(rounds) > 1 and warm_seconds > 0 else float("nan")}
    if len(rounds) > 1 and warm_seconds > 0 and all("client_seconds" in r for r in rounds):
        out["client_busy"] = sum(r["client_seconds"] for r in rounds[1:]) / (workers * warm_seconds)
    return out


NUMERIC = ("train_seconds", "total_seconds", "first_round_seconds", "updates_per_second", "warm_updates_per_second",
           "auc", "logloss")


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
    """fedrec/Flower ratios against the faster Flower row (by warm updates/s, else overall);
    returns that reference row, or None without Flower rows."""
    flower = [r for r in rows if r["framework"] == "flower"]
    if not flower:
        return None
    ref = max(flower, key=lambda r: (_finite(r["warm_updates_per_second"]), r["updates_per_second"]))
    for r in rows:
        r["x_flower"] = r["updates_per_second"] / ref["updates_per_second"]
        r["x_flower_warm"] = r["warm_updates_per_second"] / ref["warm_updates_per_second"]
        r["auc_minus_flower"] = r["auc"] - ref["auc"]
    return ref


def _finite(x: float) -> float:
    return x if x == x else -1.0


def verdicts(rows: list[dict], target: float = TARGET_X, tolerance: float = AUC_TOLERANCE) -> list[dict]:
    """Per fedrec row: is it >= ``target`` x Flower's updates/s (overall and warm) with its final AUC
    within ``tolerance`` of Flower's?"""
    out = []
    for r in rows:
        if r["framework"] != "fedrec" or "x_flower" not in r:
            continue
        same_auc = abs(r["auc_minus_flower"]) <= tolerance
        out.append({"label": r["label"], "x_flower": r["x_flower"], "x_flower_warm": r["x_flower_warm"],
                    "auc_minus_flower": r["auc_minus_flower"], "same_auc": same_auc,
                    "met_overall": same_auc and r["x_flower"] >= target,
                    "met_warm": same_auc and r["x_flower_warm"] >= target})
    return out


COLUMNS = (("framework", "label", "{}"), ("rounds", "rounds", "{}"), ("updates", "client_updates", "{}"),
           ("train s", "train_seconds", "{:.1f}"), ("total s", "total_seconds", "{:.1f}"),
           ("upd/s", "updates_per_second", "{:.1f}"), ("warm upd/s", "warm_updates_per_second", "{:.1f}"),
           ("AUC", "auc", "{:.4f}"), ("x Flower", "x_flower", "{:.1f}x"), ("x Flower warm", "x_flower_warm", "{:.1f}x"),
           ("AUC - Flower", "auc_minus_flower", "{:+.4f}"))


def format_table(rows: list[dict]) -> str:
    cols = [c for c in COLUMNS if any(c[1] in r for r in rows)]
    cells = [[c[0] for c in cols]] + [[c[2].format(r[c[1]]) if c[1] in r else "-" for c in cols] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(cols))]
    fmt = lambda line: "  ".join(s.ljust(w) if i == 0 else s.rjust(w) for i, (s, w) in enumerate(zip(line, widths)))  # noqa: E731
    return "\n".join([fmt(cells[0]), "  ".join("-" * w for w in widths), *map(fmt, cells[1:])])


def format_verdicts(rows: list[dict], vs: list[dict], ref: dict | None) -> str:
    if ref is None:
        return "no Flower rows (--skip-flower): no ratios"
    lines = [f"{r['label']}: its clients spend {r['client_busy']:.0%} of the workers' warm round time in "
             f"LocalTrainer.train (the rest is the simulation engine)" for r in rows if "client_busy" in r]
    lines.append(f"ratios against {ref['label']} (the faster Flower idiom)")
    for v in vs:
        word = "MET" if v["met_warm"] and v["met_overall"] else ("met on warm rounds only" if v["met_warm"] else "NOT met")
        lines.append(f"{TARGET_X:.0f}x target at the same AUC (+-{AUC_TOLERANCE}): {v['label']}: {word} "
                     f"({v['x_flower']:.1f}x overall, {v['x_flower_warm']:.1f}x warm, AUC {v['auc_minus_flower']:+.4f})")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import numpy as np
    from _fedbench import pyplot, save
    from matplotlib.ticker import NullFormatter

    plt = pyplot()

    labels = [r["label"] for r in rows]
    y = np.arange(len(rows))
    colors = ["tab:orange" if r["framework"] == "flower" else "tab:blue" for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 0.6 * len(rows) + 2), sharey=True)
    ax1.barh(y - 0.2, [r["updates_per_second"] for r in rows], 0.4, color=colors)
    ax1.barh(y + 0.2, [r["warm_updates_per_second"] for r in rows], 0.4, color=colors, alpha=0.5, hatch="//")
    for x, r in zip(y, rows):
        ax1.annotate(f"{r['updates_per_second']:.0f} / {r['warm_updates_per_second']:.0f}", (r["updates_per_second"], x - 0.2),
                     xytext=(3, -3), textcoords="offset points", fontsize=8)
    ax1.set_xscale("log")
    ax1.xaxis.set_minor_formatter(NullFormatter())  # the bars carry their numbers
    ax1.set_xlabel("client updates / s (log): solid all rounds, hatched warm (rounds 2+)")
    ax2.barh(y, [r["auc"] for r in rows], 0.5, color=colors)
    lo = min(r["auc"] for r in rows)
    ax2.set_xlim(max(0.0, lo - 0.02), max(r["auc"] for r in rows) + 0.01)
    ax2.set_xlabel("final test AUC (same evaluation code)")
    ax1.set_yticks(y, labels)
    ax1.invert_yaxis()  # table order, top to bottom
    for ax in (ax1, ax2):
        ax.grid(axis="x", alpha=0.3)
    r0 = rows[0]
    fig.suptitle(f"ml100k-fed: {r0['rounds']} rounds, {r0['client_updates']} client updates, FedAvg")
    path.parent.mkdir(parents=True, exist_ok=True)
    save(fig, path)


# --- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "ml100k_fedavg.yaml"))
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

    from fedrec.server import load_federated_data

    data = load_federated_data(cfg)  # for the evaluation and the schedule only; each run loads its own
    schedule = client_schedule(cfg, data) if args.client_sampling == "same" else None
    plan = [] if args.skip_flower else [(FLOWER_APIS[a], "flower", a) for a in args.flower_apis]
    plan += [(label, "fedrec", overrides) for label, overrides in FEDREC_VARIANTS.items()]
    runs: dict[str, list[dict]] = {label: [] for label, _, _ in plan}
    for rep in range(args.repeats):
        for label, framework, how in plan:  # interleaved, so drifting machine load hits every row
            if framework == "flower":
                run, state = run_flower(py, cfg, args.cpus, how, out / "runs" / f"flower-{how}-{rep + 1}", schedule)
            else:
                run, state = run_fedrec(variant(cfg, how), args.cpus)
            run.update(summarize(run["rounds"], run["total_seconds"], args.cpus))
            run.update(evaluate_state(data, cfg, state))
            runs[label].append(run)
            out.mkdir(parents=True, exist_ok=True)  # what finished survives a killed invocation
            (out / "runs.partial.json").write_text(json.dumps(runs, indent=2, default=float))
            log(f"[{rep + 1}/{args.repeats}] {label}: {run['client_updates']} updates, {run['train_seconds']:.1f} s "
                f"rounds ({run['first_round_seconds']:.1f} s round 1), {run['updates_per_second']:.1f}/s, "
                f"warm {run['warm_updates_per_second']:.1f}/s, AUC {run['auc']:.4f}")
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
    plot(rows, out / "bench_vs_flower.png")
    log(f"wrote {out / 'bench_vs_flower.json'} and {out / 'bench_vs_flower.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
