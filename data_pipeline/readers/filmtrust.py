"""FilmTrust (Guo, Zhang & Yorke-Smith, IJCAI 2013): ratings and the directed trust graph.

* ``ratings.txt``: ``user item rating`` separated by single spaces, ratings 0.5..4.0, no times (file
  order stands in for time). The release has 3 repeated (user, item) pairs; they are kept as rows
  (the published 35,497 counts them) and the report says how many there are.
* ``trust.txt``: ``trustor trustee value`` (value 1); ``read_filmtrust_trust`` returns it in the
  ratings' user ids (``readers.graph``), directed as published or undirected on request.
"""

from __future__ import annotations

import os

import numpy as np
import polars as pl

from data_pipeline.readers._release import release_file
from data_pipeline.readers._text import LINE, FieldSpec, read_delimited
from data_pipeline.readers.graph import SocialGraph, build_social_graph
from data_pipeline.schema import InteractionData, Vocabulary, build_interactions

RATINGS_FILE = "ratings.txt"
TRUST_FILE = "trust.txt"

_RATING_FIELDS = (
    FieldSpec("user", pl.Int64, "an integer user id"),
    FieldSpec("item", pl.Int64, "an integer item id"),
    FieldSpec("rating", pl.Float32, "a numeric rating"),
)
_TRUST_FIELDS = (
    FieldSpec("trustor", pl.Int64, "an integer user id"),
    FieldSpec("trustee", pl.Int64, "an integer user id"),
    FieldSpec("value", pl.Float32, "a numeric trust value"),
)


def read_filmtrust(path: str | os.PathLike, *, on_bad_lines: str = "error") -> InteractionData:
    """Ratings from ``ratings.txt`` (or the folder holding it)."""
    source = release_file(path, RATINGS_FILE, "FilmTrust")
    frame, report = read_delimited(source, " ", _RATING_FIELDS, on_bad_lines=on_bad_lines, sep_name="space")
    raw = frame.drop(LINE).to_pandas()
    data = build_interactions("filmtrust", raw, source=str(source))
    data.report = report
    return data


def repeated_pairs(data: InteractionData) -> int:
    """Rows that repeat an earlier (user, item) pair."""
    pairs = data.column("user") * (data.num_items + 1) + data.column("item")
    return int(pairs.size - np.unique(pairs).size)


def read_filmtrust_trust(
    path: str | os.PathLike, users: InteractionData | Vocabulary | None = None, *, undirected: bool = False
) -> SocialGraph:
    """The trust graph (trustor -> trustee) in ``users``' encoded ids; ``undirected=True`` treats
    a link as two-way and keeps each pair once. See ``readers.graph`` for users on one side only."""
    source = release_file(path, TRUST_FILE, "FilmTrust")
    frame, report = read_delimited(source, " ", _TRUST_FIELDS, sep_name="space")
    pairs = frame.select("trustor", "trustee").to_numpy()
    return build_social_graph(
        "filmtrust trust", pairs, users, undirected=undirected, source=source, report=report
    )
