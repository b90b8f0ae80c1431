"""One preprocessing run: stream the input through the workers into a Parquet file and/or a
trainer, timing how long the trainer waits for data.

The trainer is injected (``StreamTrainer``: anything with ``step(batch) -> loss``); the top-level
CLI gives the central DLRM (``fedrec.stream_train``), this package never imports it.

Stall accounting, per training step ``i``: ``wait_i`` is the time ``next(batches)`` blocks,
``step_i`` the time of ``trainer.step``. ``trainer_stall_fraction = sum(wait) / sum(wait + step)``
over steps 2..K: the first wait is the pipeline's start-up (worker actors starting, the first
unit read), reported apart as ``first_batch_seconds``, and
``trainer_stall_fraction_with_startup`` counts it in.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from data_pipeline.atomic import AtomicOutputs, write_json_atomic
from data_pipeline.batches import FeatureSpec
from data_pipeline.errors import ConfigError
from data_pipeline.preprocess.config import PreprocessConfig
from data_pipeline.preprocess.stream import PreprocessStream, open_stream


class StreamTrainer(Protocol):
    def step(self, batch) -> float:
        """One optimizer step on a TorchRec ``Batch``; returns the loss."""


@dataclass(frozen=True)
class TrainerOptions:
    lr: float = 0.01
    embedding_dim: int = 16
    seed: int = 0
    threads: int = 1  # torch intra-op threads of the trainer


TrainerFactory = Callable[[FeatureSpec, TrainerOptions], StreamTrainer]


@dataclass
class StallStats:
    """Wait and step times of a training loop on a stream."""

    steps: int = 0
    first_batch_seconds: float = 0.0
    wait_seconds: float = 0.0  # steps 2..K
    step_seconds: float = 0.0  # steps 2..K
    first_step_seconds: float = 0.0
    rows: int = 0  # steps 2..K
    losses: list[float] = field(default_factory=list)

    @property
    def stall_fraction(self) -> float | None:
        busy = self.wait_seconds + self.step_seconds
        return self.wait_seconds / busy if busy > 0 else None

    @property
    def stall_fraction_with_startup(self) -> float | None:
        waited = self.wait_seconds + self.first_batch_seconds
        busy = waited + self.step_seconds + self.first_step_seconds
        return waited / busy if busy > 0 else None


def train_on_stream(
    batches: Iterator, trainer: StreamTrainer, steps: int, clock: Callable[[], float] = time.perf_counter,
    on_batch: Callable[[object], None] | None = None,
) -> StallStats:
    """Up to ``steps`` trainer steps on ``batches``, timing each wait and each step apart
    (``on_batch``, e.g. writing the batch out, runs between them and counts in neither)."""
    stats = StallStats()
    while stats.steps < steps:
        t0 = clock()
        item = next(batches, None)
        t1 = clock()
        if item is None:
            break
        if on_batch is not None:
            on_batch(item)
        t2 = clock()
        batch = _batch_of(item)
        stats.losses.append(float(trainer.step(batch)))
        t3 = clock()
        if stats.steps == 0:
            stats.first_batch_seconds, stats.first_step_seconds = t1 - t0, t3 - t2
        else:
            stats.wait_seconds += t1 - t0
            stats.step_seconds += t3 - t2
            stats.rows += len(batch.labels)
        stats.steps += 1
    return stats


def _batch_of(item):
    return item[0] if isinstance(item, tuple) else item


@dataclass
class PreprocessResult:
    """The report ``--json`` writes."""

    input: str
    format: str
    rows: int
    seconds: float
    rows_per_second: float
    workers: int
    workers_min: int
    in_process: bool
    complete: bool  # the whole input went through (False when training stopped it early)
    startup_seconds: float  # Ray start and the first block's arrival
    steady_rows_per_second: float | None  # after the first block
    skipped_rows: int = 0
    header: str | None = None
    out: str | None = None
    train_steps: int | None = None
    trainer_stall_fraction: float | None = None
    trainer_stall_fraction_with_startup: float | None = None
    first_batch_seconds: float | None = None
    trainer_wait_seconds: float | None = None
    trainer_step_seconds: float | None = None
    train_samples_per_second: float | None = None
    first_loss: float | None = None
    last_loss: float | None = None
    config: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


class _ParquetSink:
    """Tables to one Parquet file, opened on the first table (its schema)."""

    def __init__(self, path: Path | None) -> None:
        self.path, self.writer = path, None

    def write(self, table: pa.Table) -> None:
        if self.path is None:
            return
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema)
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def run_preprocess(
    cfg: PreprocessConfig,
    *,
    out: str | Path | None = None,
    report_json: str | Path | None = None,
    train_steps: int = 0,
    trainer_factory: TrainerFactory | None = None,
    trainer_options: TrainerOptions = TrainerOptions(),
    progress: bool = False,
) -> PreprocessResult:
    """Preprocess ``cfg.input``; write the rows to ``out`` (Parquet) and/or train ``train_steps``
    steps on them; the report goes to ``report_json``. Outputs appear whole or not at all."""
    outputs = AtomicOutputs({"--out": (out, (".parquet",)), "--json": (report_json, (".json",))})
    stream = open_stream(cfg)
    t_start = time.perf_counter()
    stream.start()
    with outputs as tmp:
        sink = _ParquetSink(tmp.get("--out"))
        try:
            timing, stall = _consume(stream, sink, train_steps, trainer_factory, trainer_options, progress)
        finally:
            sink.close()
        seconds = time.perf_counter() - t_start
        result = _result(cfg, stream, out, seconds, timing, stall, train_steps)
        if report_json is not None:
            write_json_atomic(tmp["--json"], result.to_dict())
    return result


@dataclass
class _Timing:
    first_block_at: float | None = None
    started: float = 0.0
    ended: float = 0.0
    rows_after_first: int = 0
    complete: bool = True


def _consume(stream: PreprocessStream, sink: _ParquetSink, steps, factory, options, progress):
    from tqdm import tqdm

    timing = _Timing(started=time.perf_counter())
    bar = tqdm(desc="preprocess", unit="row", unit_scale=True, disable=not progress, file=sys.stderr)

    def seen(rows: int) -> None:
        if timing.first_block_at is None:
            timing.first_block_at = time.perf_counter()
        else:
            timing.rows_after_first += rows
        bar.update(rows)

    stall = None
    try:
        if steps:
            if factory is None:
                raise ConfigError("--train-steps", "training on the stream needs fedrec's trainer (run it through the fedrec CLI)")
            trainer = factory(stream.spec, options)
            items = stream.batches(keep_tables=sink.path is not None)

            def on_batch(item) -> None:
                if isinstance(item, tuple):
                    sink.write(item[1])
                seen(len(_batch_of(item).labels))

            stall = train_on_stream(items, trainer, steps, on_batch=on_batch)
            if sink.path is not None:
                for item in items:  # the rest of the input still goes to --out
                    on_batch(item)
            else:
                timing.complete = next(items, None) is None
                items.close()
        else:
            for table in stream.tables():
                sink.write(table)
                seen(table.num_rows)
    finally:
        bar.close()
    timing.ended = time.perf_counter()
    return timing, stall


def _result(cfg, stream, out, seconds, timing: _Timing, stall: StallStats | None, steps) -> PreprocessResult:
    after = timing.ended - timing.first_block_at if timing.first_block_at else 0.0
    result = PreprocessResult(
        input=cfg.input,
        format=cfg.format,
        rows=stream.rows_out,
        seconds=seconds,
        rows_per_second=stream.rows_out / seconds if seconds > 0 else 0.0,
        workers=cfg.max_workers,
        workers_min=cfg.min_workers,
        in_process=cfg.in_process,
        complete=timing.complete,
        startup_seconds=(timing.first_block_at or timing.ended) - timing.started,
        steady_rows_per_second=timing.rows_after_first / after if after > 0 and timing.rows_after_first else None,
        skipped_rows=stream.report.skipped,
        header=stream.report.header,
        out=str(out) if out is not None else None,
        config=cfg.model_dump(),
    )
    if stall is not None:
        result.train_steps = stall.steps
        result.trainer_stall_fraction = stall.stall_fraction
        result.trainer_stall_fraction_with_startup = stall.stall_fraction_with_startup
        result.first_batch_seconds = stall.first_batch_seconds
        result.trainer_wait_seconds = stall.wait_seconds
        result.trainer_step_seconds = stall.step_seconds
        busy = stall.wait_seconds + stall.step_seconds
        result.train_samples_per_second = stall.rows / busy if busy > 0 else None
        result.first_loss = stall.losses[0] if stall.losses else None
        result.last_loss = stall.losses[-1] if stall.losses else None
    return result
