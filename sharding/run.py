"""``fedrec plan run``: execute a plan under TorchRec's ``DistributedModelParallel`` and time it.

One process per rank (``torch.multiprocessing``), joined by ``torch.distributed`` (gloo on CPU,
NCCL on CUDA). Every rank builds the exported model (``sharding.torchrec_plan``: the plan's
tables, hot/cold bands, column slices and row blocks on their ranks), feeds its own batches of
``batch_size`` samples drawn from the workload (per table: a sample has the feature with
probability ``coverage`` and then about ``pooling_factor`` ids, each a hotness rank drawn from the
table's access CDF and routed to the TorchRec table and row that hold it), and trains: forward,
a sum loss, backward with SGD applied in the backward pass (TorchRec's fused optimizer). Each
rank times its steps after ``warmup``; ``rank_step_ms`` is each rank's median, ``max_step_ms``
their maximum. Batches are drawn before the clock starts.

``scale`` shrinks every table's rows (``scale_plan``), keeping the access CDF, dims, pooling,
coverage, the sharding and each shard's hot share, so a plan for hundreds of GB runs here.

What the CPU path can and cannot run (TorchRec 1.8, read from ``torchrec/distributed``): the
``EmbeddingBagCollectionSharder`` offers ``FUSED`` (FBGEMM's table-batched CPU kernel) for
table-wise, column-wise and row-wise shards on CPU, and ``DENSE`` only for data-parallel; the UVM
kernels (``FUSED_UVM``, ``FUSED_UVM_CACHING``) and TorchRec's planner's own row-wise proposals are
CUDA-only. With an explicit plan, row-wise shards do run on CPU over gloo (checked by the tests).
So on CPU every part runs ``FUSED`` in host memory: the run measures the plan's layout (lookups,
ids and pooled outputs per rank, the all-to-alls, the row-wise reduction, tables per rank) but not
its HBM/UVM split. ``device="cuda"`` (one GPU per rank) runs the plan's own kernels: ``FUSED``
for hot bands, ``FUSED_UVM`` for cold ones or ``FUSED_UVM_CACHING`` with ``split="cache"``; it is
accepted and documented but cannot be tested on a machine without GPUs.

``predicted_max_ms`` is the cost model's slowest GPU for the scaled plan on the run's machine:
``world_size`` ranks, ``batch_size`` per rank, and the constants of ``profile`` (on CUDA by
default the plan's topology; on CPU ``CPU_PROFILE``, where HBM and UVM are the same host memory).
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from data_pipeline.errors import ConfigError, FedrecError
from sharding.plan import Plan, Shard, TablePlacement
from sharding.shards import ROW_WISE, row_blocks
from sharding.topology import Topology
from sharding.workload import TableWorkload, Workload

DEVICES = ("cpu", "cuda")
# Rough constants for FBGEMM's CPU kernels and gloo on loopback (forward and backward together);
# scripts/bench_planner_measured.py fits them to measured step times and can write a --profile.
CPU_PROFILE = {"hbm_gbps": 2.0, "uvm_gbps": 2.0, "comm_gbps": 1.0, "table_fixed_us": 50.0}


class RunError(FedrecError):
    """A plan that could not be run (a rank failed, or the machine cannot host it)."""


@dataclass
class RunConfig:
    world_size: int = 2
    steps: int = 20
    warmup: int = 3
    batch_size: int = 256
    scale: float = 1.0
    device: str = "cpu"
    split: str = "remap"
    seed: int = 0
    threads: int | None = None  # per rank; default: the CPU cores shared evenly

    def check(self) -> None:
        for name, low in (("world_size", 1), ("steps", 1), ("warmup", 0), ("batch_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"--{name.replace('_', '-')}", f"must be an integer >= {low}, got {value!r}")
        if not 0 < self.scale <= 1:
            raise ConfigError("--scale", f"must be in (0, 1], got {self.scale}")
        if self.device not in DEVICES:
            raise ConfigError("--device", f"expected one of {DEVICES}, got {self.device!r}")


@dataclass
class RunResult:
    world_size: int
    rank_step_ms: list[float]
    max_step_ms: float
    predicted_max_ms: float
    device: str
    predicted_rank_ms: list[float] = field(default_factory=list)
    rank_lookups: list[float] = field(default_factory=list)  # ids looked up per rank and step
    # On a machine shared with other work a step is slow whenever either rank was descheduled.
    # Two statistics that see less of that: the 20th percentile of each rank's step times, and the
    # median CPU time each rank's process spent per step (its own work: lookups, kernels, sending
    # and receiving; a rank blocked on a collective uses no CPU).
    rank_step_ms_p20: list[float] = field(default_factory=list)
    rank_cpu_ms: list[float] = field(default_factory=list)
    steps: int = 0
    batch_size: int = 0
    scale: float = 1.0
    planner: str = ""
    profile: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def scale_plan(workload: Workload, plan: Plan, topology: Topology, scale: float) -> tuple[Workload, Plan]:
    """The workload with every table's rows times ``scale`` (same CDF, dims, pooling, coverage)
    and the plan with the same sharding, ranks, column slices and hot share per shard."""
    if scale == 1.0:
        return workload, plan
    by_name = plan.by_name()
    tables, placements = [], []
    for t in workload.tables:
        p = by_name[t.name]
        sharding = p.sharding(t.rows, t.dim, topology.gpus)
        rows = max(1, int(round(t.rows * scale)))
        if sharding == ROW_WISE:
            rows = max(rows, topology.gpus * topology.gpus)
        rows = min(rows, t.rows)
        tables.append(replace(t, rows=rows))
        frac = min(s.hbm_rows / s.rows if s.rows else 1.0 for s in p.shards)
        if sharding == ROW_WISE:
            sizes = row_blocks(rows, topology.gpus)
            hot = min(int(frac * sizes[0]), min(sizes))
            offsets = np.r_[0, np.cumsum(sizes)]
            shards = [
                Shard(r, int(offsets[r]), int(offsets[r + 1]), 0, t.dim, min(hot, sizes[r]), sizes[r] - min(hot, sizes[r]))
                for r in range(topology.gpus)
            ]
        else:
            hot = rows if all(s.uvm_rows == 0 for s in p.shards) else int(frac * rows)
            shards = [Shard(s.rank, 0, rows, s.col_start, s.col_stop(t.dim), hot, rows - hot) for s in p.shards]
        placements.append(TablePlacement(t.name, shards, p.kind))
    return Workload(tables), Plan(plan.planner, placements, dict(plan.solver))


def predict(workload: Workload, plan: Plan, topology: Topology, config: RunConfig, profile: dict) -> np.ndarray:
    """The cost model's ms per step of each rank for this run."""
    run_topology = Topology.from_dict(
        {**topology.to_dict(), **profile, "gpus": config.world_size, "batch_size": config.batch_size}, where="profile"
    )
    return plan.gpu_costs(workload, run_topology)


def run_plan(
    workload: Workload, plan: Plan, topology: Topology, config: RunConfig, profile: dict | None = None
) -> RunResult:
    """Run ``plan`` (made for ``topology``) under DMP and time it; see the module docstring."""
    return run_plans(workload, [plan], topology, config, profile)[0]


def run_plans(
    workload: Workload,
    plans: list[Plan],
    topology: Topology,
    config: RunConfig,
    profile: dict | None = None,
    rounds: int = 1,
) -> list[RunResult]:
    """Run several plans of one workload in one set of rank processes: every model is built once,
    then ``rounds`` rounds each run ``steps`` steps of every plan in turn, so a change in the
    machine's load during the run touches every plan alike. ``rank_step_ms`` is each rank's median
    over all of a plan's timed steps."""
    config.check()
    if config.world_size != topology.gpus:
        raise ConfigError(
            "--world-size",
            f"the plan places shards on {topology.gpus} GPUs; run it with --world-size {topology.gpus} "
            f"(or plan again with --gpus {config.world_size})",
        )
    if config.device == "cuda":
        import torch

        if not torch.cuda.is_available() or torch.cuda.device_count() < config.world_size:
            have = torch.cuda.device_count() if torch.cuda.is_available() else 0
            raise RunError(f"--device cuda needs {config.world_size} GPUs (one per rank); this machine has {have}")
    if profile is None:
        profile = CPU_PROFILE if config.device == "cpu" else {}
    scaled, predicted = [], []
    for plan in plans:
        plan.check(workload, topology, capacity=False)
        small, one = scale_plan(workload, plan, topology, config.scale)
        for p in one.tables:
            if config.device == "cpu" and any(s.rows == 0 for s in p.shards):
                raise RunError(
                    f"{plan.planner}: table '{p.name}' has a shard with no rows (row-wise blocks of a table with "
                    f"fewer rows than ranks); FBGEMM's CPU kernel cannot hold an empty shard"
                )
        scaled.append(one)
        predicted.append(predict(small, one, topology, config, profile))
    payload = {
        "workload": small.to_dict(),
        "plans": [_plan_payload(p, small) for p in scaled],
        "topology": topology.to_dict(),
        "config": asdict(config),
        "rounds": rounds,
    }
    with tempfile.TemporaryDirectory(prefix="fedrec-plan-run-") as tmp:
        spec = Path(tmp) / "spec.json"
        spec.write_text(json.dumps(payload))
        _spawn(config, str(spec), tmp)
        reports = [json.loads((Path(tmp) / f"rank{r}.json").read_text()) for r in range(config.world_size)]
    results = []
    for k, (plan, one, pred) in enumerate(zip(plans, scaled, predicted)):
        rank_ms = [statistics.median(r["step_ms"][k]) for r in reports]
        low = [float(np.percentile(r["step_ms"][k], 20)) for r in reports]
        cpu = [statistics.median(r["cpu_ms"][k]) for r in reports]
        results.append(
            RunResult(
                world_size=config.world_size,
                rank_step_ms=[round(x, 4) for x in rank_ms],
                max_step_ms=round(max(rank_ms), 4),
                predicted_max_ms=round(float(pred.max()), 6),
                device=config.device,
                predicted_rank_ms=[round(float(x), 6) for x in pred],
                rank_lookups=_rank_lookups(small, one, topology, config, [r["ids"][k] for r in reports]),
                rank_step_ms_p20=[round(x, 4) for x in low],
                rank_cpu_ms=[round(x, 4) for x in cpu],
                steps=config.steps * rounds,
                batch_size=config.batch_size,
                scale=config.scale,
                planner=plan.planner,
                profile=dict(profile),
            )
        )
    return results


def _plan_payload(plan: Plan, workload: Workload) -> dict:
    dims = {t.name: t.dim for t in workload.tables}
    return {
        "version": 2,
        "planner": plan.planner,
        "tables": [{"name": p.name, "kind": p.kind, "shards": [s.to_dict(dims[p.name]) for s in p.shards]} for p in plan.tables],
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(config: RunConfig, spec: str, out_dir: str) -> None:
    import torch.multiprocessing as mp

    # Import what every rank needs once, here, and fork: the ranks start in a second instead of
    # each importing torch and TorchRec again (the parent has run no parallel torch work yet).
    import torchrec.distributed.model_parallel  # noqa: F401

    port = _free_port()
    try:
        # CUDA cannot be used in a forked child once the parent touched it: spawn there.
        method = "spawn" if config.device == "cuda" else "fork"
        mp.start_processes(_worker, args=(spec, out_dir, port), nprocs=config.world_size, join=True, start_method=method)
    except mp.ProcessRaisedException as exc:
        last = [line for line in str(exc).strip().splitlines() if line.strip()][-1]
        raise RunError(f"a rank failed: {last[:300]}") from None
    except mp.ProcessExitedException as exc:
        raise RunError(f"a rank exited early ({exc})") from None


def _worker(rank: int, spec_path: str, out_dir: str, port: int) -> None:
    """One rank: build the sharded model, draw batches, train and time ``steps`` steps."""
    import logging

    logging.disable(logging.WARNING)  # fbgemm and torchrec announce kernels and tracing at INFO/WARNING
    import warnings

    warnings.filterwarnings("ignore")
    import torch
    import torch.distributed as dist

    spec = json.loads(Path(spec_path).read_text())
    config = RunConfig(**spec["config"])
    workload = Workload.from_dict(spec["workload"])
    plans = [Plan.from_dict(p) for p in spec["plans"]]
    topology = Topology.from_dict(spec["topology"])
    threads = config.threads or max(1, (os.cpu_count() or 1) // config.world_size)
    torch.set_num_threads(threads)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    cuda = config.device == "cuda"
    if cuda:
        torch.cuda.set_device(rank)
    device = torch.device("cuda", rank) if cuda else torch.device("cpu")
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=config.world_size)
    try:
        models, batches, counts = [], [], []
        for plan in plans:
            model, keys = _sharded_model(workload, plan, topology, config, device)
            kjts, ids = _batches(workload, plan, topology, config, rank, keys, device)
            models.append(model)
            batches.append(kjts)
            counts.append(ids)
        times: list[list[float]] = [[] for _ in plans]
        cpu_times: list[list[float]] = [[] for _ in plans]
        steps = range(spec.get("rounds", 1) * len(plans))
        if rank == 0 and len(steps) > 1:
            from tqdm import tqdm

            steps = tqdm(steps, desc="plan run", unit="plan-round", file=sys.stderr, leave=False)
        for turn in steps:
            k = turn % len(plans)
            warm = config.warmup if turn < len(plans) else 0  # warm up each model once
            for step, kjt in enumerate(batches[k][config.warmup - warm :]):
                if cuda:
                    torch.cuda.synchronize()
                start, start_cpu = time.perf_counter(), time.process_time()
                models[k](kjt).values().sum().backward()
                if cuda:
                    torch.cuda.synchronize()
                if step >= warm:
                    times[k].append((time.perf_counter() - start) * 1000.0)
                    cpu_times[k].append((time.process_time() - start_cpu) * 1000.0)
        dist.barrier()
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps({"step_ms": times, "cpu_ms": cpu_times, "ids": counts}))
    finally:
        dist.destroy_process_group()


def _sharded_model(workload: Workload, plan: Plan, topology: Topology, config: RunConfig, device):
    import torch
    from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
    from torchrec.distributed.model_parallel import DistributedModelParallel
    from torchrec.modules.embedding_modules import EmbeddingBagCollection
    from torchrec.optim.apply_optimizer_in_backward import apply_optimizer_in_backward

    from sharding.torchrec_plan import split_table_configs, to_torchrec_plan

    configs = split_table_configs(workload, plan, config.split, topology)
    ebc = EmbeddingBagCollection(tables=configs, device=torch.device("meta"))
    apply_optimizer_in_backward(torch.optim.SGD, ebc.parameters(), {"lr": 0.01})
    sharding_plan = to_torchrec_plan(workload, plan, topology, "", config.split, device.type)
    model = DistributedModelParallel(ebc, device=device, plan=sharding_plan, sharders=[EmbeddingBagCollectionSharder()])
    return model, [c.name for c in configs]


def _batches(workload: Workload, plan: Plan, topology: Topology, config: RunConfig, rank: int, keys: list[str], device):
    """This rank's batches as ``KeyedJaggedTensor``s, and the ids per TorchRec table and step."""
    import torch
    from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

    from sharding.torchrec_plan import routers, table_layout

    route = routers(workload, plan, topology, config.split)
    by_name = plan.by_name()
    layout = {x.name: x for t in workload.tables for x in table_layout(t, by_name[t.name], topology.gpus, config.split)}
    # row offsets of each shard (row-wise blocks): ids are counted per shard
    starts = {k: np.array([s[1] for s in x.shards]) for k, x in layout.items()}
    counts = {k: np.zeros(len(x.shards)) for k, x in layout.items()}
    n_steps = config.warmup + config.steps
    rng = np.random.default_rng([config.seed, rank])
    out = []
    for _ in range(config.warmup + config.steps):
        lengths = {k: np.zeros(config.batch_size, dtype=np.int64) for k in keys}
        values = {k: [] for k in keys}
        for t in workload.tables:
            n = sample_lengths(rng, t, config.batch_size)
            ranks = sample_ranks(rng, t, int(n.sum()))
            which, rows = route[t.name].route(ranks)
            bag = np.repeat(np.arange(config.batch_size), n)
            for j, name in enumerate(route[t.name].names):
                mask = which == j
                lengths[name] = np.bincount(bag[mask], minlength=config.batch_size)
                values[name] = rows[mask]
                if layout[name].sharding == ROW_WISE:
                    block = np.searchsorted(starts[name], rows[mask], side="right") - 1
                    counts[name] += np.bincount(block, minlength=len(starts[name])) / n_steps
                else:
                    counts[name] += mask.sum() / n_steps
        kjt = KeyedJaggedTensor.from_lengths_sync(
            keys,
            torch.from_numpy(np.concatenate([values[k] for k in keys]).astype(np.int64)),
            torch.from_numpy(np.concatenate([lengths[k] for k in keys]).astype(np.int64)),
        )
        out.append(kjt.to(device))
    return out, {k: v.tolist() for k, v in counts.items()}


def sample_lengths(rng: np.random.Generator, t: TableWorkload, batch: int) -> np.ndarray:
    """Ids per sample: present with probability ``coverage``, then ``1 + Poisson(pooling - 1)``
    ids (Bernoulli(pooling) below one), so the mean is ``coverage * pooling_factor``."""
    present = rng.random(batch) < t.coverage
    if t.pooling_factor >= 1:
        n = 1 + rng.poisson(t.pooling_factor - 1.0, batch)
    else:
        n = (rng.random(batch) < t.pooling_factor).astype(np.int64)
    return np.where(present, n, 0).astype(np.int64)


def sample_ranks(rng: np.random.Generator, t: TableWorkload, n: int) -> np.ndarray:
    """Hotness ranks drawn from the table's access CDF (inverse-CDF sampling)."""
    xs, ys = t.cdf_points()
    return np.minimum((np.interp(rng.random(n), ys, xs) * t.rows).astype(np.int64), t.rows - 1)


def _rank_lookups(workload: Workload, plan: Plan, topology: Topology, config: RunConfig, ids_per_rank: list[dict]) -> list[float]:
    """Ids each rank's shards look up per step, counted from every rank's batches: a table-wise
    shard or a column slice looks up every id of its table, a row-wise block those in its rows."""
    from sharding.torchrec_plan import table_layout

    per_rank = np.zeros(config.world_size)
    by_name = plan.by_name()
    for t in workload.tables:
        for x in table_layout(t, by_name[t.name], topology.gpus, config.split):
            ids = np.sum([r[x.name] for r in ids_per_rank], axis=0)
            for (rank, *_), n in zip(x.shards, ids):
                per_rank[rank] += n
    return [round(float(v), 1) for v in per_rank]
