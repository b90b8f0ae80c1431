"""Atomic outputs: whole or nothing, parents created, unknown extensions refused up front."""

from __future__ import annotations

import pytest

from data_pipeline.atomic import AtomicOutputs, atomic_path
from data_pipeline.errors import ConfigError


def test_success_renames_all_outputs_into_place(tmp_path):
    out, plot = tmp_path / "a" / "plan.json", tmp_path / "b" / "plan.png"
    with AtomicOutputs({"--out": (out, (".json",)), "--plot": (plot, (".png",))}) as tmp:
        assert tmp["--plot"].suffix == ".png"  # writers that pick a format from the name still can
        tmp["--out"].write_text("{}")
        tmp["--plot"].write_bytes(b"png")
        assert not out.exists()  # nothing under a final name before the block completes
    assert out.read_text() == "{}" and plot.read_bytes() == b"png"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["plan.json", "plan.png"]


def test_failure_leaves_nothing_new_and_keeps_the_old_file(tmp_path):
    out, plot = tmp_path / "plan.json", tmp_path / "plan.png"
    out.write_text("old")
    with pytest.raises(RuntimeError):
        with AtomicOutputs({"--out": (out, None), "--plot": (plot, None)}) as tmp:
            tmp["--out"].write_text("new")
            raise RuntimeError("the plot failed")
    assert out.read_text() == "old" and not plot.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]


def test_unknown_extension_is_refused_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match=r"--out.*\.parquet"):
        with atomic_path(tmp_path / "x.csv", (".parquet",)):
            raise AssertionError("must not run")
    assert not list(tmp_path.iterdir())


def test_an_output_never_written_is_an_error_not_an_empty_file(tmp_path):
    with pytest.raises(ConfigError, match="nothing was written"):
        with atomic_path(tmp_path / "x.parquet", (".parquet",)):
            pass
    assert not list(tmp_path.iterdir())


def test_outputs_get_ordinary_file_permissions(tmp_path):
    import os
    import stat

    from data_pipeline.atomic import write_text_atomic

    umask = os.umask(0o022)
    os.umask(umask)
    out = write_text_atomic(tmp_path / "a.txt", "x")
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600
