"""The worker-count model of ``scripts/bench_dpp.py``: its simulation agrees with the rate argument
it stands in for when nothing varies, and variability only adds stall."""

from __future__ import annotations

import pytest

from tests.unit.test_bench_scripts import load_script

KW = dict(worker_rows_per_s=100_000.0, trainer_rows_per_s=400_000.0, batch=4096, block_rows=50_000)


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_dpp")


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_steady_stall_is_the_rate_deficit_without_variability(bench, workers):
    # W workers of 100k rows/s feed a 400k rows/s trainer: it waits 1 - W/4 of its time
    assert bench.simulate(workers, cv=0.0, **KW) == pytest.approx(1 - workers / 4, abs=0.02)


def test_enough_workers_leave_no_stall_and_a_buffer_absorbs_variability(bench):
    assert bench.simulate(5, cv=0.0, **KW) == pytest.approx(0.0, abs=1e-9)
    assert bench.workers_needed(0.05, cv=0.0, **KW) == 4  # the 4th worker closes the deficit
    # at exactly the trainer's rate, block-time variability stalls a trainer with no buffer ...
    assert bench.simulate(4, cv=0.5, buffer_rows=0, **KW) > 0.05
    assert bench.workers_needed(0.05, cv=0.5, buffer_rows=0, **KW) == 5
    # ... and a few blocks of buffer absorb it
    assert bench.simulate(4, cv=0.5, buffer_rows=200_000, **KW) < 0.01
