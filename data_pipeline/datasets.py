"""Where the real datasets live: ``$FEDREC_DATA``, default ``../shared/datasets`` beside the
checkout. Tests and benchmarks find every dataset through ``dataset_path`` and nothing else."""

from __future__ import annotations

import os
from pathlib import Path

from data_pipeline.errors import DatasetNotFoundError

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    env = os.environ.get("FEDREC_DATA")
    return Path(env) if env else (REPO_ROOT / ".." / "shared" / "datasets").resolve()


def dataset_path(name: str) -> Path:
    """Path of a named dataset (``ml-100k``, ``criteo-sample/train.tsv``); raises
    ``DatasetNotFoundError`` naming where it looked."""
    path = data_root() / name
    if not path.exists():
        raise DatasetNotFoundError(
            f"dataset {name!r} not found at {path} (set FEDREC_DATA to the datasets folder)"
        )
    return path


def resolve_data_path(path: str | os.PathLike) -> Path:
    """A path as given, or else relative to the datasets root (so configs can say ``ml-100k``)."""
    p = Path(os.path.expandvars(str(path)))
    if p.exists() or p.is_absolute():
        return p
    candidate = data_root() / p
    return candidate if candidate.exists() else p
