"""The wheel carries every data file the packages open (a wheel install must work like a checkout)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("fedrec", "sharding", "sampling", "data_pipeline")


def _package_data_files() -> set[str]:
    """Every tracked non-Python file inside a package folder: what the code reads at run time."""
    out = subprocess.run(["git", "ls-files", *PACKAGES], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return {p for p in out.split() if not p.endswith(".py")}


def test_wheel_contains_every_package_data_file(tmp_path):
    wanted = _package_data_files()
    assert "sampling/genie_model.json" in wanted  # the file `fedrec sample --method auto` needs
    src = tmp_path / "src"  # build from a copy of the tracked files: a build writes build/ beside its source
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (REPO / f).is_file():
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, src / f)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(src)],
        check=True, capture_output=True,
    )
    wheel = next(tmp_path.glob("fedrec-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(wanted - names)
    assert not missing, f"data files missing from the wheel: {missing}"
