"""Readers for the original formats; each returns canonical data (see ``data_pipeline.schema``)."""

from __future__ import annotations

import os
from pathlib import Path

from data_pipeline.errors import ConfigError, DatasetNotFoundError
from data_pipeline.formats import INTERACTION_FORMATS, PRESET_FORMATS
from data_pipeline.readers.amazon import read_amazon_reviews
from data_pipeline.readers.citeulike import read_citeulike
from data_pipeline.readers.coat import read_coat, read_coat_split
from data_pipeline.readers.filmtrust import read_filmtrust, read_filmtrust_trust
from data_pipeline.readers.graph import SocialGraph
from data_pipeline.readers.interactions import (
    read_csv_interactions,
    read_jsonl_interactions,
    read_parquet_interactions,
)
from data_pipeline.readers.lastfm import read_lastfm, read_lastfm_friends, read_lastfm_tags
from data_pipeline.readers.movielens import read_movielens, read_movielens_fold
from data_pipeline.schema import InteractionData

# Presets for published datasets (a folder or their main file), then generic formats.
PRESET_READERS = {
    "lastfm": read_lastfm,
    "filmtrust": read_filmtrust,
    "citeulike": read_citeulike,
    "coat": read_coat,
    "amazon-json": read_amazon_reviews,
}
assert tuple(PRESET_READERS) == PRESET_FORMATS, "data_pipeline.formats lists the presets for the parsers"


def load_interactions(
    path: str | os.PathLike,
    format: str,
    *,
    columns=None,
    header: bool | None = None,
    on_bad_lines: str = "error",
    encoding: str = "utf-8",
) -> InteractionData:
    """One entry point for interaction data in any supported format (``encoding``: text formats
    other than MovieLens, whose releases have fixed encodings)."""
    if not Path(path).exists():
        raise DatasetNotFoundError(f"{path}: no such file or folder")
    if format == "movielens":
        return read_movielens(path, on_bad_lines=on_bad_lines)
    if format in ("csv", "tsv"):
        return read_csv_interactions(
            path,
            columns or "user,item,rating,timestamp",
            sep="\t" if format == "tsv" else None,
            header=header,
            on_bad_lines=on_bad_lines,
            encoding=encoding,
        )
    if format == "parquet":
        return read_parquet_interactions(path, columns)
    if format == "jsonl":
        return read_jsonl_interactions(path, columns, on_bad_lines=on_bad_lines, encoding=encoding)
    if format in PRESET_READERS:
        return PRESET_READERS[format](path, on_bad_lines=on_bad_lines)
    raise ConfigError(
        "format", f"unknown interaction format {format!r}; expected one of {INTERACTION_FORMATS}"
    )


def dataset_extras(data: InteractionData, format: str) -> dict:
    """What a preset's release holds beside the interactions, for ``fedrec data stats``: the
    social graph (Last.fm friends, FilmTrust trust), Coat's random test matrix, collapsed Amazon
    repeats, FilmTrust's repeated pairs. Empty for other formats."""
    from pathlib import Path

    folder = Path(data.source) if Path(data.source).is_dir() else Path(data.source).parent
    extras: dict = {}
    if format == "lastfm" and (folder / "user_friends.dat").exists():
        extras["social_graph"] = read_lastfm_friends(folder, data).to_dict()
    if format == "filmtrust":
        from data_pipeline.readers.filmtrust import TRUST_FILE, repeated_pairs

        extras["repeated_pairs"] = repeated_pairs(data)
        if (folder / TRUST_FILE).exists():
            extras["social_graph"] = read_filmtrust_trust(folder, data).to_dict()
    if format == "coat" and data.name == "coat-train" and (folder / "test.ascii").exists():
        test = read_coat(folder / "test.ascii")
        extras["test_mcar"] = {"rows": test.num_rows, "users": test.num_users, "items": test.num_items}
    if format == "amazon-json":
        collapsed = getattr(data.report, "duplicates", 0)
        extras.update(reviews=data.num_rows + collapsed, collapsed_duplicates=collapsed)
    return extras


__all__ = [
    "INTERACTION_FORMATS",
    "PRESET_READERS",
    "SocialGraph",
    "dataset_extras",
    "load_interactions",
    "read_amazon_reviews",
    "read_citeulike",
    "read_coat",
    "read_coat_split",
    "read_filmtrust",
    "read_filmtrust_trust",
    "read_lastfm",
    "read_lastfm_friends",
    "read_lastfm_tags",
    "read_csv_interactions",
    "read_jsonl_interactions",
    "read_movielens",
    "read_movielens_fold",
    "read_parquet_interactions",
]
