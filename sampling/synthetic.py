"""Datasets for training Data-Genie and for tests: ML-100K variants with controlled sparsity and
skew, and generated latent-factor interaction logs with Zipf item popularity.

The generator gives users and items latent tastes, so personalised models genuinely beat
popularity (as on real logs) and the zoo's ranking means something; ``zipf`` sets popularity skew,
``density`` the fraction of the user-item matrix observed, ``drift`` how strongly later interactions
go to newer items (temporal dynamics).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from data_pipeline.schema import InteractionData, build_interactions
from sampling.samplers.base import degrees, zero_based


def zipf_interactions(
    name: str = "zipf",
    users: int = 600,
    items: int = 800,
    density: float = 0.03,
    zipf: float = 1.0,
    taste: float = 2.0,
    drift: float = 0.5,
    dim: int = 8,
    seed: int = 0,
) -> InteractionData:
    """A log of about ``density * users * items`` interactions (see module doc)."""
    rng = np.random.default_rng(seed)
    u_vec = rng.normal(size=(users, dim)) / np.sqrt(dim)
    i_vec = rng.normal(size=(items, dim)) / np.sqrt(dim)
    popularity = 1.0 / np.arange(1, items + 1) ** zipf
    popularity = popularity[rng.permutation(items)]
    release = rng.random(items)  # when each item appears, as a fraction of the log's time span
    activity = rng.lognormal(0.0, 1.0, users)
    per_user = np.clip(np.round(activity / activity.mean() * density * items), 2, items // 2).astype(int)
    rows = []
    for u in range(users):
        logits = np.log(popularity) + taste * (i_vec @ u_vec[u])
        p = np.exp(logits - logits.max())
        chosen = rng.choice(items, size=per_user[u], replace=False, p=p / p.sum())
        # Later in a user's history go (with strength `drift`) the more recently released items.
        key = drift * release[chosen] + (1 - drift) * rng.random(chosen.size)
        times = np.sort(rng.random(chosen.size)) * 3.0e7 + 8.0e8
        rating = np.clip(np.round(3 + 2 * np.tanh(i_vec[chosen] @ u_vec[u] * 2) + rng.normal(0, 0.7, chosen.size)), 1, 5)
        rows.append(pd.DataFrame({"user": u + 1, "item": chosen[np.argsort(key)] + 1, "rating": rating, "timestamp": times.astype(np.int64)}))
    return build_interactions(name, pd.concat(rows, ignore_index=True))


def ml100k_variants(data: InteractionData, seed: int = 0, max_rows: int = 30_000) -> list[InteractionData]:
    """Subsets and resamplings of a real log with different sparsity, skew and size; each is cut to
    about ``max_rows`` by keeping random whole users (so a corpus sweep stays affordable)."""
    rng = np.random.default_rng(seed)
    user, item = zero_based(data)
    user_deg, item_deg = degrees(data)
    n = data.num_rows
    keep_users = rng.random(data.num_users) < 0.5
    pop_rank = np.argsort(np.argsort(-item_deg))
    variants = {
        "half-users": keep_users[user],
        "sparse": rng.random(n) < 0.4,
        "dense-core": (user_deg[user] >= 60) & (item_deg[item] >= 40),
        "no-head": pop_rank[item] >= int(0.05 * data.num_items),  # the 5% most popular items removed
        "more-skew": rng.random(n) < (item_deg[item] / item_deg.max()) ** 0.5,
    }
    return [keep_whole_users(data, max_rows, rng, rows=np.flatnonzero(mask), name=f"{data.name}-{tag}")
            for tag, mask in variants.items()]  # fmt: skip


def keep_whole_users(
    data: InteractionData, max_rows: int, rng: np.random.Generator, rows: np.ndarray | None = None, name: str | None = None
) -> InteractionData:
    """``rows`` of ``data`` (default: all), cut to at most ``max_rows`` by keeping whole users in
    random order, re-encoded as a log of its own."""
    user, _ = zero_based(data)
    if rows is None:
        if data.num_rows <= max_rows:
            return data
        rows = np.arange(data.num_rows)
    if rows.size > max_rows:
        counts = np.bincount(user[rows], minlength=data.num_users)
        order = rng.permutation(data.num_users)
        keep = order[np.cumsum(counts[order]) <= max_rows]
        rows = rows[np.isin(user[rows], keep)]
    return _rebuild(data, name or data.name, rows)


def _rebuild(data: InteractionData, name: str, rows: np.ndarray) -> InteractionData:
    """A subset re-encoded with its own (contiguous) vocabularies, as if it were read from a file."""
    from sampling.harness import has_times

    frame = data.take(rows).raw_interactions()
    columns = ["user", "item", "rating", "timestamp"] if has_times(data) else ["user", "item", "rating"]
    return build_interactions(name, frame[columns])  # a log without times stays one (rows numbered anew)


def genie_corpus(ml100k: InteractionData | None = None, seed: int = 0) -> list[InteractionData]:
    """The datasets Data-Genie is trained on: ML-100K, its variants, and generated Zipf logs."""
    corpus = [] if ml100k is None else [ml100k, *ml100k_variants(ml100k, seed)]
    settings = [  # (users, items, density, zipf, taste, drift): 10k-25k interactions each
        (700, 900, 0.02, 0.6, 2.0, 0.2),
        (600, 700, 0.05, 1.0, 2.0, 0.5),
        (700, 500, 0.07, 1.2, 1.5, 0.8),
        (500, 1000, 0.03, 1.4, 2.5, 0.3),
        (1000, 500, 0.04, 0.8, 1.0, 0.6),
        (800, 800, 0.015, 1.1, 3.0, 0.9),
    ]
    for k, (u, i, d, z, t, dr) in enumerate(settings):
        name = f"zipf-u{u}-i{i}-d{d:g}-z{z:g}"
        corpus.append(zipf_interactions(name, u, i, d, z, t, dr, seed=seed + k))
    return corpus
