"""The preprocessing stream as the trainer sees it: Arrow tables or TorchRec batches, and at the
end a report of what was read.

Two sources give the same rows: ``InProcessStream`` runs every work unit in the trainer's own
process (what "preprocessing on the trainer" means), ``RayDataStream`` (``ray_stream.py``) runs
them in a pool of Ray Data workers. Both number bad lines the same way: a worker counts lines from
its unit's first line, and ``rebase`` turns that into the file's line number.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa
from torchrec.datasets.utils import Batch

from data_pipeline.errors import BadLine, DataFormatError, FedrecError, ReadReport
from data_pipeline.preprocess.batches import arrow_to_batch, rebatch
from data_pipeline.preprocess.config import PreprocessConfig
from data_pipeline.preprocess.transforms import InputPlan, UnitError, UnitReport, plan_input, run_units
from data_pipeline.preprocess.units import ByteRange, line_at_offset, split_ranges
from data_pipeline.readers._text import _MAX_EXAMPLES, no_rows_error


class PreprocessStream:
    """What both sources share: the plan, the work units, the report and the error mapping."""

    def __init__(self, cfg: PreprocessConfig, plan: InputPlan | None = None) -> None:
        self.cfg = cfg
        self.plan = plan or plan_input(cfg)
        self.units: list[ByteRange] = split_ranges(self.plan.path, cfg.range_bytes)
        self.spec = cfg.feature_spec()
        self.report = ReadReport(self.plan.path, header=self.plan.header)
        self.rows_out = 0  # rows handed to the consumer (negatives included)

    @property
    def workers(self) -> int:
        return self.cfg.max_workers

    def start(self) -> None:
        """Bring up whatever serves the stream (nothing, in-process)."""

    def tables(self) -> Iterator[pa.Table]:
        """Arrow tables as the workers made them (one per block)."""
        for table in self._tables():
            self.rows_out += table.num_rows
            yield table
        self._done()

    def batches(self, keep_tables: bool = False) -> Iterator[Batch | tuple[Batch, pa.Table]]:
        """TorchRec batches of ``cfg.batch_size`` rows (the last may be shorter); with
        ``keep_tables`` each comes with its Arrow table, ``(batch, table)``. ``rows_out`` counts
        the rows handed out, not those read ahead."""
        for table in rebatch(self._tables(), self.cfg.batch_size):
            batch = arrow_to_batch(table, self.spec)
            self.rows_out += table.num_rows
            yield (batch, table) if keep_tables else batch
        self._done()

    def _tables(self) -> Iterator[pa.Table]:
        raise NotImplementedError

    def _done(self) -> None:
        self.report.rows = self.rows_out
        self.finish()

    def absorb(self, unit: UnitReport) -> None:
        """Count a unit's skipped lines; its first examples get file line numbers."""
        self.report.skipped += unit.skipped
        room = _MAX_EXAMPLES - len(self.report.examples)
        if unit.examples and room > 0:
            first = line_at_offset(self.plan.path, unit.first_offset)
            self.report.examples += [
                BadLine(first + b.line - 1, b.field, b.expected, b.found) for b in unit.examples[:room]
            ]
            self.report.examples.sort(key=lambda b: b.line)

    def finish(self) -> None:
        if self.rows_out == 0:
            raise no_rows_error(self.plan.path, self.report)

    @contextmanager
    def errors_named(self):
        """Worker errors as the readers' one-line errors, with the file's line number."""
        try:
            yield
        except Exception as exc:  # a worker's error may arrive wrapped (Ray); find ours inside
            found = _find_cause(exc)
            if found is None:
                raise
            raise rebase(self.plan.path, found) from None


def rebase(path: str, found: Exception) -> FedrecError:
    if isinstance(found, UnitError):
        offset, error = found.unwrap()
        if not isinstance(error, DataFormatError) or error.line is None:
            return error
        return error.at_line(line_at_offset(path, offset) + error.line - 1)
    return found


def _find_cause(exc: BaseException | None) -> Exception | None:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, UnitError | FedrecError):
            return exc
        exc = getattr(exc, "cause", None) or exc.__cause__ or exc.__context__
    return None


class InProcessStream(PreprocessStream):
    """Every unit in turn, in this process: the on-trainer preprocessing baseline."""

    def _tables(self) -> Iterator[pa.Table]:
        with self.errors_named():
            for out in run_units(self.cfg, self.plan, self.units):
                if isinstance(out, UnitReport):
                    self.absorb(out)
                else:
                    yield out


def open_stream(cfg: PreprocessConfig) -> PreprocessStream:
    """The stream ``cfg`` asks for: in-process for 0 workers, else a Ray Data worker pool."""
    if cfg.in_process:
        return InProcessStream(cfg)
    from data_pipeline.preprocess.ray_stream import RayDataStream

    return RayDataStream(cfg)

