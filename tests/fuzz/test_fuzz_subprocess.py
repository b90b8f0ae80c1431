"""A handful of bad inputs run as real ``fedrec`` processes (the in-process cases cannot see
what only a real process shows: interpreter-level tracebacks, stray output at exit). Started
together, so the suite pays for one process start-up, not one per case."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

from tests.fuzz.harness import _meaningful

ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(random.Random(12).randrange(256) for _ in range(592))


def _cases(folder: Path) -> dict[str, list[str]]:
    junk = folder / "a.out"
    junk.write_bytes(ELF)
    latin = folder / "latin.csv"
    latin.write_bytes("caf\xe9,i1,4,1\n".encode("latin-1"))
    out = folder / "out"
    return {
        "stats criteo binary": ["data", "stats", str(junk), "--format", "criteo", "--json"],
        "convert csv binary": ["data", "convert", str(junk), "--format", "csv", "--out", str(out / "c.parquet")],
        "preprocess binary": ["data", "preprocess", "--input", str(junk), "--format", "criteo", "--workers", "0",
                              "--out", str(out / "p.parquet"), "--json", str(out / "r.json")],  # fmt: skip
        "stats latin-1 csv": ["data", "stats", str(latin), "--format", "csv"],
    }


def test_bad_inputs_in_real_processes(tmp_path):
    cases = _cases(tmp_path)
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "fedrec.cli", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name, argv in cases.items()
    }
    errors = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        lines = errors[name] = _meaningful(err)
        assert proc.returncode == 2, f"{name}: exit {proc.returncode}\n{err[-2000:]}"
        assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("fedrec: error:"), f"{name}: {err}"
        assert out == "", f"{name}: stdout {out!r}"
    assert not (tmp_path / "out").exists()  # no command left a file, or even a folder
    assert "pass the file's encoding with --encoding" in errors["stats latin-1 csv"][0]
    assert "byte 0x02 at byte offset 4" in errors["stats criteo binary"][0]
