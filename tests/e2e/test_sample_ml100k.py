"""The ``fedrec sample`` contract on real MovieLens 100K (skipped when the data is absent, except
under CI=true, where a missing dataset is a failure)."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from data_pipeline.errors import DatasetNotFoundError
from fedrec.cli import main


def ml100k() -> str:
    from data_pipeline.datasets import dataset_path

    try:
        return str(dataset_path("ml-100k"))
    except DatasetNotFoundError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {exc}")
        pytest.skip(str(exc))


def test_contract_random_keeps_20_percent(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = ml100k()
    code = main(["sample", "--input", path, "--format", "movielens", "--rate", "0.2", "--method", "random",
                 "--out", "s.parquet", "--report", "r.json"])  # fmt: skip
    assert code == 0
    assert abs(len(pd.read_parquet("s.parquet")) / 100000 - 0.2) <= 0.01
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["rows_before"] == 100000 and report["users_before"] == 943 and report["items_before"] == 1682



def test_contract_bare_dataset_name_and_auto(tmp_path, monkeypatch):
    """``--input ml-100k`` (as the issue writes it) resolves under $FEDREC_DATA; auto picks a sampler."""
    ml100k()
    monkeypatch.chdir(tmp_path)
    code = main(["sample", "--input", "ml-100k", "--format", "movielens", "--rate", "0.2", "--method", "auto",
                 "--out", "s.parquet", "--report", "r.json"])  # fmt: skip
    assert code == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["requested_method"] == "auto" and report["method"] != "auto"
    assert report["predicted_tau"] is not None
    assert abs(len(pd.read_parquet("s.parquet")) / 100000 - 0.2) <= 0.01
