"""Shared fixtures. Real datasets are found through ``data_pipeline.datasets.dataset_path`` only;
under CI=true a missing dataset fails the test instead of skipping it."""

from __future__ import annotations

import os

import pytest

from data_pipeline.datasets import dataset_path
from data_pipeline.errors import DatasetNotFoundError


def require_dataset(name: str):
    try:
        return dataset_path(name)
    except DatasetNotFoundError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and a required dataset is missing: {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def ml100k_path():
    return require_dataset("ml-100k")


@pytest.fixture(scope="session")
def criteo_sample_path():
    return require_dataset("criteo-sample/train.tsv")


@pytest.fixture(scope="session")
def ml100k(ml100k_path):
    from data_pipeline.readers import read_movielens

    return read_movielens(ml100k_path)
