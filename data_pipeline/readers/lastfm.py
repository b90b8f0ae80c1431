"""HetRec 2011 Last.fm (``hetrec2011-lastfm-2k``): listening counts, the friends graph and tags.

* ``user_artists.dat`` (``userID\\tartistID\\tweight``, a header line, CRLF endings): implicit
  feedback; the play count becomes the ``rating`` column (models that want 0/1 read its pattern).
  The file has no times, so file order stands in for time (see ``build_interactions``).
* ``user_friends.dat`` (``userID\\tfriendID``): the friends graph, listed in both directions;
  ``read_lastfm_friends`` returns it in the interaction data's user ids (``readers.graph``).
* ``user_taggedartists.dat`` (``userID artistID tagID day month year``) and ``tags.dat``
  (``tagID\\ttagValue``, ISO-8859-1): ``read_lastfm_tags`` returns the tag assignments; the
  interaction reader attaches each artist's distinct tags as the item feature ``tags``.

A header line is recognised by its non-numeric fields, so a file saved without one also reads.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

from data_pipeline.errors import DataFormatError, DatasetNotFoundError
from data_pipeline.readers._text import LINE, FieldSpec, first_line_is_header, read_delimited
from data_pipeline.readers.graph import SocialGraph, build_social_graph
from data_pipeline.schema import InteractionData, Vocabulary, build_interactions

ARTISTS_FILE = "user_artists.dat"
FRIENDS_FILE = "user_friends.dat"
TAGGED_FILE = "user_taggedartists.dat"
TAGS_FILE = "tags.dat"

_USER = FieldSpec("user", pl.Int64, "an integer user id")
_ARTIST = FieldSpec("item", pl.Int64, "an integer artist id")


def _positive_count(col: pl.Expr) -> pl.Expr:
    value = col.cast(pl.Int64, strict=False)
    return pl.when(value >= 1).then(value).otherwise(None)


_WEIGHT = FieldSpec("rating", pl.Int64, "a positive integer play count", parser=_positive_count)


def lastfm_folder(path: str | os.PathLike) -> Path:
    """The release folder, given it or any file inside it."""
    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    if not (folder / ARTISTS_FILE).exists():
        raise DatasetNotFoundError(f"{folder}: not a HetRec Last.fm folder (expected {ARTISTS_FILE})")
    return folder


def _read_tab(path: Path, fields, on_bad_lines: str = "error") -> tuple[pl.DataFrame, object]:
    header = first_line_is_header(path, "\t", range(len(fields)))
    return read_delimited(path, "\t", fields, header=header, on_bad_lines=on_bad_lines, sep_name="tab")


def read_lastfm(
    path: str | os.PathLike, *, on_bad_lines: str = "error", with_features: bool = True
) -> InteractionData:
    """Listening counts as interactions; artists' tags as the item feature ``tags`` when the tag
    file is there (``with_features``)."""
    given = Path(path)
    folder = lastfm_folder(given)
    source = given if given.is_file() and given.name == ARTISTS_FILE else folder / ARTISTS_FILE
    frame, report = _read_tab(source, (_USER, _ARTIST, _WEIGHT), on_bad_lines)
    raw = frame.drop(LINE).to_pandas()
    raw["rating"] = raw["rating"].astype(np.float32)
    items = None
    if with_features and (folder / TAGGED_FILE).exists():
        items = _artist_tags(folder / TAGGED_FILE, set(raw["item"].unique()))
    data = build_interactions("lastfm-2k", raw, source=str(source), item_features=items)
    data.report = report
    return data


def read_lastfm_friends(
    path: str | os.PathLike, users: InteractionData | Vocabulary | None = None, *, undirected: bool = True
) -> SocialGraph:
    """The friends graph in ``users``' encoded ids (see ``readers.graph`` for users on one side
    only). The file lists each friendship both ways; ``undirected=True`` (the default) keeps each
    pair once, ``False`` keeps the file's directed pairs."""
    given = Path(path)
    source = given if given.is_file() else lastfm_folder(given) / FRIENDS_FILE
    if not source.exists():
        raise DatasetNotFoundError(f"{source}: no such file (the Last.fm friends graph)")
    frame, report = _read_tab(source, (_USER, FieldSpec("friend", pl.Int64, "an integer user id")))
    pairs = frame.select("user", "friend").to_numpy()
    return build_social_graph(
        "lastfm-2k friends", pairs, users, undirected=undirected, source=source, report=report
    )


def read_lastfm_tags(path: str | os.PathLike) -> tuple[pd.DataFrame, dict[int, str]]:
    """Tag assignments ``(user, item, tag, timestamp)`` with raw ids and the day as a Unix time,
    and the tag names by id (``{}`` when ``tags.dat`` is missing)."""
    folder = lastfm_folder(path)
    assignments = _read_assignments(folder / TAGGED_FILE)
    names = _read_tag_names(folder / TAGS_FILE) if (folder / TAGS_FILE).exists() else {}
    return assignments, names


def _read_assignments(path: Path) -> pd.DataFrame:
    fields = (
        _USER,
        _ARTIST,
        FieldSpec("tag", pl.Int64, "an integer tag id"),
        FieldSpec("day", pl.Int64, "a day of the month"),
        FieldSpec("month", pl.Int64, "a month number"),
        FieldSpec("year", pl.Int64, "a year"),
    )
    frame, _ = _read_tab(path, fields)
    when = pd.to_datetime(
        frame.select("year", "month", "day").to_pandas(), errors="coerce"
    )  # pandas names year/month/day columns as a date
    if when.isna().any():
        row = int(np.flatnonzero(when.isna().to_numpy())[0])
        line = frame[LINE][row]
        found = "-".join(str(frame[c][row]) for c in ("year", "month", "day"))
        raise DataFormatError(path, line=line, field="day", expected="a valid calendar date", found=found)
    out = frame.select("user", "item", "tag").to_pandas()
    out["timestamp"] = (when.astype("datetime64[s]").astype(np.int64)).to_numpy()
    return out


def _read_tag_names(path: Path) -> dict[int, str]:
    """tags.dat is ISO-8859-1 (the release says so), read line by line to keep line numbers."""
    names: dict[int, str] = {}
    with open(path, encoding="latin-1") as fh:
        for number, line in enumerate(fh, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            tag, sep, name = line.partition("\t")
            if not sep:
                raise DataFormatError(path, line=number, expected="2 tab-separated fields", found="1 field")
            if not tag.strip().isdigit():
                if number == 1:
                    continue  # the header line
                raise DataFormatError(
                    path, line=number, field="tagID", expected="an integer tag id", found=tag
                )
            names[int(tag)] = name
    return names


def _artist_tags(path: Path, artists: set) -> pd.DataFrame:
    """Each listened artist's distinct tag ids (tags on artists nobody listened to are dropped)."""
    assignments = _read_assignments(path)
    assignments = assignments[assignments["item"].isin(artists)]
    tags = assignments.groupby("item")["tag"].unique()
    return pd.DataFrame({"item": tags.index.to_numpy(), "tags": [sorted(t.tolist()) for t in tags]})
