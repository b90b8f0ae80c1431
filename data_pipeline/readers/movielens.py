"""MovieLens readers: 100K (``u.data``), 1M/10M (``ratings.dat``), latest-small/20M/25M (``ratings.csv``).

``read_movielens(folder)`` finds which release the folder holds by its files, so a user points it at
the unpacked download. Side features come along where the release has them: user age, gender,
occupation (100K, 1M) and item genres (all releases).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

from data_pipeline.errors import DataFormatError, DatasetNotFoundError, ReadReport
from data_pipeline.readers._text import LINE, FieldSpec, finite_float, read_delimited
from data_pipeline.schema import InteractionData, build_interactions

# ML-1M's age codes; ML-100K's exact ages are bucketed onto the same edges.
AGE_BUCKET_EDGES = (18, 25, 35, 45, 50, 56)

_RATING_FIELDS = (
    FieldSpec("user", pl.Int64, "an integer user id"),
    FieldSpec("item", pl.Int64, "an integer item id"),
    FieldSpec("rating", pl.Float32, "a numeric rating", parser=finite_float),  # NaN/inf are bad
    FieldSpec("timestamp", pl.Int64, "an integer Unix timestamp"),
)


def read_movielens(
    path: str | os.PathLike, *, on_bad_lines: str = "error", with_features: bool = True
) -> InteractionData:
    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    if not folder.exists():
        raise DatasetNotFoundError(f"{folder}: no such folder (expected an unpacked MovieLens release)")
    if (folder / "u.data").exists():
        return _read_100k(folder, on_bad_lines, with_features)
    if (folder / "ratings.dat").exists():
        return _read_dat(folder, on_bad_lines, with_features)
    if (folder / "ratings.csv").exists():
        return _read_csv_release(folder, on_bad_lines, with_features)
    raise DatasetNotFoundError(
        f"{folder}: not a MovieLens folder (expected u.data for 100K, ratings.dat for 1M/10M, ratings.csv for latest-small/20M/25M)"
    )


def age_bucket(age: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.asarray(AGE_BUCKET_EDGES), np.asarray(age), side="right").astype(np.int64)


def _finish(
    name: str, ratings: pl.DataFrame, report: ReadReport, source: Path, users, items
) -> InteractionData:
    data = build_interactions(
        name, ratings.drop(LINE).to_pandas(), source=str(source), user_features=users, item_features=items
    )
    data.report = report
    return data


def _read_100k(folder: Path, on_bad_lines: str, with_features: bool) -> InteractionData:
    ratings, report = read_delimited(
        folder / "u.data", "\t", _RATING_FIELDS, on_bad_lines=on_bad_lines, sep_name="tab"
    )
    users = items = None
    if with_features and (folder / "u.user").exists():
        u, _ = read_delimited(
            folder / "u.user",
            "|",
            (
                FieldSpec("user", pl.Int64, "an integer user id"),
                FieldSpec("age", pl.Int64, "an integer age"),
                FieldSpec("gender", pl.String, "M or F"),
                FieldSpec("occupation", pl.String, "an occupation name"),
                FieldSpec("zip", pl.String, "a zip code", allow_empty=True),
            ),
            sep_name="'|'",
        )
        users = _user_frame(u.to_pandas())
    if with_features and (folder / "u.item").exists():
        items = _read_100k_items(folder / "u.item")
    return _finish("ml-100k", ratings, report, folder, users, items)


def _user_frame(u: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user": u["user"].to_numpy(),
            "gender": u["gender"].to_numpy(),
            "occupation": u["occupation"].astype(str).to_numpy(),
            "age_bucket": age_bucket(u["age"].to_numpy()),
        }
    )


def _read_100k_items(path: Path) -> pd.DataFrame:
    """u.item is latin-1 with 19 genre flags after five text fields."""
    ids, genres = [], []
    with open(path, encoding="latin-1") as fh:
        for number, line in enumerate(fh, start=1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            parts = line.split("|")
            if len(parts) != 24:
                raise DataFormatError(
                    path, line=number, expected="24 '|'-separated fields", found=f"{len(parts)} fields"
                )
            try:
                ids.append(int(parts[0]))
                flags = [int(x) for x in parts[5:]]
            except ValueError:
                raise DataFormatError(
                    path, line=number, field="item/genre flags", expected="integers", found=line[:40]
                ) from None
            genres.append([g for g, f in enumerate(flags) if f])
    return pd.DataFrame({"item": ids, "genres": genres})


def _read_dat(folder: Path, on_bad_lines: str, with_features: bool) -> InteractionData:
    ratings, report = read_delimited(
        folder / "ratings.dat", "::", _RATING_FIELDS, on_bad_lines=on_bad_lines, sep_name="'::'"
    )
    name = "ml-1m" if ratings.height < 2_000_000 else "ml-10m"
    users = items = None
    if with_features and (folder / "users.dat").exists():
        u, _ = read_delimited(
            folder / "users.dat",
            "::",
            (
                FieldSpec("user", pl.Int64, "an integer user id"),
                FieldSpec("gender", pl.String, "M or F"),
                FieldSpec("age", pl.Int64, "an age code"),
                FieldSpec("occupation", pl.String, "an occupation code"),
                FieldSpec("zip", pl.String, "a zip code", allow_empty=True),
            ),
            sep_name="'::'",
        )
        users = _user_frame(u.to_pandas())
    if with_features and (folder / "movies.dat").exists():
        movies = pd.read_csv(
            folder / "movies.dat",
            sep="::",
            engine="python",
            header=None,
            names=["item", "title", "genres"],
            encoding="latin-1",
        )
        items = _genre_lists(movies)
    return _finish(name, ratings, report, folder, users, items)


def _read_csv_release(folder: Path, on_bad_lines: str, with_features: bool) -> InteractionData:
    ratings, report = read_delimited(
        folder / "ratings.csv", ",", _RATING_FIELDS, header=True, on_bad_lines=on_bad_lines, sep_name="comma"
    )
    items = None
    if with_features and (folder / "movies.csv").exists():
        items = _genre_lists(_read_movies_csv(folder / "movies.csv"))
    # latest-small (100,836 ratings) shares the 20M/25M layout; the size tells the releases apart.
    name = (
        "ml-latest-small"
        if ratings.height < 1_000_000
        else "ml-20m"
        if ratings.height < 22_000_000
        else "ml-25m"
    )
    return _finish(name, ratings, report, folder, None, items)


def _read_movies_csv(path: Path) -> pd.DataFrame:
    """movies.csv quotes titles that contain commas, so it needs a real CSV parser; a missing
    column or a non-integer id is named like any other bad field."""
    try:
        movies = pd.read_csv(path, dtype={"genres": str, "title": str})
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataFormatError(
            path, expected="CSV with columns movieId,title,genres", found=str(exc).splitlines()[0]
        ) from None
    missing = [c for c in ("movieId", "genres") if c not in movies.columns]
    if missing:
        raise DataFormatError(
            path,
            f"missing columns {missing}",
            expected="columns movieId,title,genres",
            found=list(movies.columns),
        )
    ids = pd.to_numeric(movies["movieId"], errors="coerce")
    if ids.isna().any():
        row = int(np.flatnonzero(ids.isna().to_numpy())[0])
        raise DataFormatError(
            path,
            line=row + 2,
            field="movieId",
            expected="an integer movie id",
            found=movies["movieId"].iloc[row],
        )
    return pd.DataFrame(
        {"item": ids.astype(np.int64), "genres": movies["genres"].fillna("(no genres listed)")}
    )


def _genre_lists(movies: pd.DataFrame) -> pd.DataFrame:
    names = sorted({g for gs in movies["genres"].astype(str) for g in gs.split("|")})
    code = {g: i for i, g in enumerate(names)}
    return pd.DataFrame(
        {
            "item": movies["item"].to_numpy(),
            "genres": [[code[g] for g in gs.split("|")] for gs in movies["genres"].astype(str)],
        }
    )


def read_movielens_fold(path: str | os.PathLike, fold: str) -> tuple[InteractionData, np.ndarray]:
    """The official ML-100K folds (``u1``..``u5``, ``ua``, ``ub``): the full data plus a boolean
    test mask, so both halves share one vocabulary."""
    folder = Path(path)
    base, test = folder / f"{fold}.base", folder / f"{fold}.test"
    if not base.exists() or not test.exists():
        raise DatasetNotFoundError(f"{folder}: fold '{fold}' needs {base.name} and {test.name}")
    full = read_movielens(folder)
    t, _ = read_delimited(test, "\t", _RATING_FIELDS, sep_name="tab")
    keys = pd.MultiIndex.from_arrays(
        [full.vocabs["user"].encode(t["user"].to_numpy()), full.vocabs["item"].encode(t["item"].to_numpy())]
    )
    all_keys = pd.MultiIndex.from_arrays([full.column("user"), full.column("item")])
    return full, all_keys.isin(keys)
