"""The canonical in-memory form every reader produces and every consumer reads.

Interactions are an Arrow table with the columns of ``INTERACTION_SCHEMA`` holding *encoded* ids:
contiguous ints from a :class:`Vocabulary`, where index 0 is the out-of-vocabulary bucket. Side
features (user or item attributes) are Arrow tables keyed by the same encoded ids. Nothing
downstream re-parses files: splits, statistics, partitions and TorchRec batches all start here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from data_pipeline.errors import DataFormatError, ReadReport

INTERACTION_SCHEMA = pa.schema(
    [
        ("user", pa.int64()),
        ("item", pa.int64()),
        ("rating", pa.float32()),
        ("timestamp", pa.int64()),
    ]
)
OOV_INDEX = 0


@dataclass
class Vocabulary:
    """Raw id <-> contiguous index; index 0 is reserved for ids never seen when it was built.

    A pandas ``Index`` does the lookup because it hashes millions of ids in C; keeping the raw
    values lets every encoded table round-trip to the original ids.
    """

    name: str
    values: np.ndarray
    _index: pd.Index = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values)
        self._index = pd.Index(self.values)
        if not self._index.is_unique:
            raise ValueError(f"vocabulary '{self.name}' has duplicate values")

    @classmethod
    def fit(cls, name: str, raw: Sequence | np.ndarray | pa.Array) -> Vocabulary:
        """Build from observed raw ids, sorted so that encodings are deterministic."""
        arr = raw.to_numpy(zero_copy_only=False) if isinstance(raw, pa.Array | pa.ChunkedArray) else raw
        uniques = pd.unique(pd.Series(np.asarray(arr)).dropna())
        try:
            uniques = np.sort(uniques)
        except TypeError:  # mixed types: keep first-seen order
            pass
        return cls(name, uniques)

    def __len__(self) -> int:
        """Number of embedding rows needed: known ids plus the OOV bucket."""
        return len(self.values) + 1

    def encode(self, raw: Sequence | np.ndarray) -> np.ndarray:
        positions = self._index.get_indexer(np.asarray(raw))
        return (positions + 1).astype(np.int64)  # -1 (unknown) lands on OOV_INDEX

    def decode(self, codes: Sequence[int] | np.ndarray) -> np.ndarray:
        codes = np.asarray(codes, dtype=np.int64)
        if codes.size and (codes.min() < 0 or codes.max() >= len(self)):
            raise ValueError(f"vocabulary '{self.name}': codes outside [0, {len(self)})")
        out = np.empty(codes.shape, dtype=object)
        known = codes != OOV_INDEX
        out[known] = self.values[codes[known] - 1]
        out[~known] = None
        return out


@dataclass
class InteractionData:
    """A dataset in canonical form: encoded interactions, vocabularies and side features."""

    name: str
    interactions: pa.Table
    vocabs: dict[str, Vocabulary]
    user_features: pa.Table | None = None
    item_features: pa.Table | None = None
    source: str = ""
    report: ReadReport | None = None

    @property
    def num_rows(self) -> int:
        return self.interactions.num_rows

    @property
    def num_users(self) -> int:
        return len(self.vocabs["user"]) - 1

    @property
    def num_items(self) -> int:
        return len(self.vocabs["item"]) - 1

    def column(self, name: str) -> np.ndarray:
        return self.interactions.column(name).to_numpy()

    def take(self, indices: np.ndarray) -> InteractionData:
        """Rows by position; vocabularies are kept so ids stay comparable with the full data."""
        return InteractionData(
            self.name,
            self.interactions.take(pa.array(np.asarray(indices, dtype=np.int64))),
            self.vocabs,
            self.user_features,
            self.item_features,
            self.source,
        )

    def raw_interactions(self) -> pd.DataFrame:
        """Interactions with the original user and item ids (for writing subsets back out)."""
        df = self.interactions.to_pandas()
        df["user"] = self.vocabs["user"].decode(df["user"].to_numpy())
        df["item"] = self.vocabs["item"].decode(df["item"].to_numpy())
        return df


def build_interactions(
    name: str,
    raw: pd.DataFrame,
    *,
    source: str = "",
    user_features: pd.DataFrame | None = None,
    item_features: pd.DataFrame | None = None,
) -> InteractionData:
    """Encode a raw frame (user, item[, rating][, timestamp]) into canonical form.

    Missing ratings mean implicit feedback (1.0); a missing timestamp keeps file order as time,
    so temporal splits still follow the order the log was written in.
    """
    for col in ("user", "item"):
        if col not in raw:
            raise DataFormatError(source or name, f"no '{col}' column", expected="user and item columns")
    if len(raw) == 0:
        raise DataFormatError(source or name, "no interactions", expected="at least one row", found="0 rows")
    user_vocab = Vocabulary.fit("user", raw["user"].to_numpy())
    item_vocab = Vocabulary.fit("item", raw["item"].to_numpy())
    rating = raw["rating"].to_numpy(np.float32) if "rating" in raw else np.ones(len(raw), np.float32)
    timestamp = (
        raw["timestamp"].to_numpy(np.int64) if "timestamp" in raw else np.arange(len(raw), dtype=np.int64)
    )
    table = pa.table(
        {
            "user": user_vocab.encode(raw["user"].to_numpy()),
            "item": item_vocab.encode(raw["item"].to_numpy()),
            "rating": rating,
            "timestamp": timestamp,
        },
        schema=INTERACTION_SCHEMA,
    )
    vocabs = {"user": user_vocab, "item": item_vocab}
    uf = _encode_side(user_features, "user", user_vocab, vocabs)
    itf = _encode_side(item_features, "item", item_vocab, vocabs)
    return InteractionData(name, table, vocabs, uf, itf, source)


def _encode_side(
    frame: pd.DataFrame | None, key: str, key_vocab: Vocabulary, vocabs: dict[str, Vocabulary]
) -> pa.Table | None:
    """Encode a side-feature frame: the key with the interaction vocabulary, categorical columns
    with vocabularies of their own (stored in ``vocabs`` under ``key.column``); list columns
    (multi-valued, e.g. genres) keep int lists as they are."""
    if frame is None:
        return None
    out = {key: key_vocab.encode(frame[key].to_numpy())}
    for col in frame.columns:
        if col == key:
            continue
        values = frame[col]
        if values.dtype == object and len(values) and isinstance(values.iloc[0], list | np.ndarray):
            out[col] = pa.array([list(v) for v in values], type=pa.list_(pa.int64()))
        elif values.dtype.kind in "fc":
            out[col] = values.to_numpy(np.float32)
        else:
            vocab = Vocabulary.fit(f"{key}.{col}", values.to_numpy())
            vocabs[vocab.name] = vocab
            out[col] = vocab.encode(values.to_numpy())
    return pa.table(out)
