"""The preprocessing service on Ray Data: work units -> a pool of worker actors -> the trainer.

``ray.data.from_items(units).map_batches(Worker, compute=ActorPoolStrategy(min, max))``: each
actor reads its units from storage, parses and transforms them (``transforms.process_unit``, the
same code as the in-process path, polars fast path included) and yields Arrow blocks; the driver
consumes them with ``iter_torch_batches``, whose collate step builds TorchRec batches in Ray
Data's prefetch thread. The pool is a fixed size or autoscales between the bounds.

Why not ``streaming_split`` for several consumers: it hands out blocks in lock-step, so every
consumer waits for the slowest (a known Ray issue). A consumer of its own speed gets its own
pipeline over its own share of the units instead (``RayDataStream(cfg, units=shard)`` for each
shard of ``units.shard_units``); each pipeline's pool backs up only its own consumer.

Worker processes get ``POLARS_MAX_THREADS=1``: one actor is one core's worth of preprocessing,
so the pool size is the number of cores preprocessing uses, and actors do not oversubscribe the
cores with polars thread pools.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence

import pyarrow as pa
import ray
from ray.data.collate_fn import ArrowBatchCollateFn
from torchrec.datasets.utils import Batch

from data_pipeline.batches import FeatureSpec
from data_pipeline.errors import FedrecError
from data_pipeline.preprocess.batches import arrow_to_batch
from data_pipeline.preprocess.config import PreprocessConfig
from data_pipeline.preprocess.stream import PreprocessStream
from data_pipeline.preprocess.transforms import InputPlan, UnitReport, process_unit
from data_pipeline.preprocess.units import ByteRange

PREFETCH_BATCHES = 4  # batches Ray Data prepares ahead of the trainer


class RayStartError(FedrecError):
    """Ray could not be started or joined (one line on the CLI, like any other fedrec error)."""


def ensure_ray(workers: int, attempts: int = 2) -> None:
    """Join the cluster named by RAY_ADDRESS, or start a local Ray with room for ``workers``
    one-CPU actors besides the driver (logical CPUs; on a small machine they share the cores).

    A local start is tried twice: on a saturated machine Ray's raylet can miss its fixed 30 s
    start-up window, and a second try usually makes it."""
    if ray.is_initialized():
        return
    _quiet_ray_logs()
    logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)  # the token banner
    for attempt in range(1, attempts + 1):
        try:
            if os.environ.get("RAY_ADDRESS"):
                ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
            else:
                ray.init(
                    address="local",  # not whatever `ray start` left in /tmp/ray: only RAY_ADDRESS joins one
                    num_cpus=max(os.cpu_count() or 1, workers + 1),
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                    runtime_env={"env_vars": {"POLARS_MAX_THREADS": "1"}},
                )
            return
        except Exception as exc:  # Ray raises bare Exception/ConnectionError/RuntimeError here
            if ray.is_initialized():
                ray.shutdown()
            if attempt == attempts:
                where = os.environ.get("RAY_ADDRESS") or "a local Ray"
                raise RayStartError(
                    f"could not start {where} ({exc}); retry, or pass --workers 0 to preprocess in this process"
                ) from None


@ray.remote(num_cpus=0)
class _ReportCollector:
    """Skipped-line reports from the workers (``on_bad_lines='skip'``)."""

    def __init__(self) -> None:
        self.reports: list[UnitReport] = []

    def add(self, report: UnitReport) -> None:
        self.reports.append(report)

    def all(self) -> list[UnitReport]:
        return self.reports


def _worker_class(cfg: PreprocessConfig, plan: InputPlan, collector):
    """A Ray Data callable class with the run's config built in (no constructor arguments in the
    object store, so nothing to lose if an actor restarts)."""

    class PreprocessWorker:
        def __call__(self, units: pa.Table) -> Iterator[pa.Table]:
            for index, start, end in zip(*(units.column(c).to_pylist() for c in ("index", "start", "end"))):
                for out in process_unit(cfg, plan, ByteRange(index, start, end)):
                    if not isinstance(out, UnitReport):
                        yield out
                    elif out.skipped and collector is not None:
                        ray.get(collector.add.remote(out))

    return PreprocessWorker


class TorchRecCollate(ArrowBatchCollateFn):
    """``iter_torch_batches(collate_fn=TorchRecCollate(spec))``: Arrow batch -> TorchRec Batch
    (with ``keep_tables``: ``(Batch, Arrow table)``, for a consumer that also writes the rows)."""

    def __init__(self, spec: FeatureSpec, keep_tables: bool = False) -> None:
        self.spec, self.keep_tables = spec, keep_tables

    def __call__(self, batch: pa.Table) -> Batch | tuple[Batch, pa.Table]:
        out = arrow_to_batch(batch, self.spec)
        return (out, batch) if self.keep_tables else out


class RayDataStream(PreprocessStream):
    """Units preprocessed by a Ray Data actor pool, streamed to this process."""

    def __init__(self, cfg: PreprocessConfig, plan: InputPlan | None = None, units: Sequence[ByteRange] | None = None):
        super().__init__(cfg, plan)
        if units is not None:
            self.units = list(units)
        self._collector = None

    def start(self) -> None:
        ensure_ray(self.cfg.max_workers)

    def dataset(self) -> ray.data.Dataset:
        self.start()
        _quiet_ray_logs()
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.raise_original_map_exception = True  # our errors arrive as themselves
        ctx.execution_options.preserve_order = self.cfg.ordered
        if self.cfg.on_bad_lines == "skip":
            self._collector = _ReportCollector.remote()
        items = [{"index": u.index, "start": u.start, "end": u.end} for u in self.units]
        ds = ray.data.from_items(items, override_num_blocks=max(len(items), 1))
        return ds.map_batches(
            _worker_class(self.cfg, self.plan, self._collector),
            batch_size=1,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(min_size=self.cfg.min_workers, max_size=self.cfg.max_workers),
            num_cpus=1,
        )

    def tables(self) -> Iterator[pa.Table]:
        tables = self.dataset().iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=PREFETCH_BATCHES)
        yield from self._stream(tables, lambda table: table.num_rows)

    def batches(self, keep_tables: bool = False) -> Iterator[Batch | tuple[Batch, pa.Table]]:
        batches = self.dataset().iter_torch_batches(
            batch_size=self.cfg.batch_size,
            collate_fn=TorchRecCollate(self.spec, keep_tables),
            prefetch_batches=PREFETCH_BATCHES,
        )
        yield from self._stream(batches, lambda item: len((item[0] if keep_tables else item).labels))

    def _stream(self, items, rows_of) -> Iterator:
        try:
            with self.errors_named():
                for item in items:
                    self.rows_out += rows_of(item)
                    yield item
            self._collect_reports()
            self._done()
        finally:
            if self._collector is not None:
                ray.kill(self._collector)
                self._collector = None

    def _collect_reports(self) -> None:
        if self._collector is not None:
            for unit in sorted(ray.get(self._collector.all.remote()), key=lambda u: u.first_offset):
                self.absorb(unit)


def _quiet_ray_logs() -> None:
    """Ray Data's INFO lines (execution plans, the progress-bar notice) stay out of the CLI's
    stderr, where one line per error is the contract; ``--verbose`` (DEBUG) keeps them."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.ERROR)
