"""Distill-CF: the hand-written Gumbel-sum gradient, the differentiable kernel, a summary that
learns, and ``fedrec sample --method distill-cf``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from sampling.distill import (
    DistillCF,
    _gumbel_sum,
    _GumbelSum,
    _holdout,
    _nmf_logits,
    _validation_ndcg,
    krr_predict,
    ntk_relu_torch,
)
from sampling.models import make_model
from sampling.models.closed_form import ntk_relu
from sampling.synthetic import zipf_interactions


@pytest.fixture(scope="module")
def data():
    return zipf_interactions("distill", users=250, items=120, density=0.08, seed=3)


def test_gumbel_sum_gradient_equals_autograd():
    logits = torch.randn(4, 9, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(4, 9, dtype=torch.float64)
    (_GumbelSum.apply(logits, 0.7, 5, 11) * weights).sum().backward()
    again = logits.detach().clone().requires_grad_(True)
    (_gumbel_sum(again, 0.7, 5, 11) * weights).sum().backward()  # autograd through every draw
    torch.testing.assert_close(logits.grad, again.grad)
    assert _gumbel_sum(logits.detach(), 0.7, 5, 11).sum(dim=1).allclose(torch.full((4,), 5.0, dtype=torch.float64))


def test_torch_kernel_and_krr_match_infinity_ae():
    rng = np.random.default_rng(0)
    a = (rng.random((6, 15)) < 0.3).astype(np.float64)
    b = (rng.random((4, 15)) < 0.3).astype(np.float64)
    expected = ntk_relu(a @ b.T, np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1))
    np.testing.assert_allclose(ntk_relu_torch(torch.from_numpy(a), torch.from_numpy(b)).numpy(), expected, atol=1e-5)
    support, queries = a.astype(np.float32), b.astype(np.float32)
    model = make_model("infinity-ae", reg=0.5).fit(support)  # the closed-form model on a dense summary
    ours = krr_predict(torch.from_numpy(support), torch.from_numpy(queries), 0.5).numpy()
    cold = model.cold_items_
    np.testing.assert_allclose(model.predict(queries)[:, ~cold], ours[:, ~cold], rtol=1e-3, atol=1e-4)


def test_summary_learns_and_is_written_with_fractional_weights(data):
    distiller = DistillCF(budget=8, steps=60, eval_every=15, lr=0.3, gumbel_tau=5.0, reg=0.1, seed=1, init="users",
                          validation="random").fit(data)  # fmt: skip
    summary = distiller.summary_
    assert summary.shape == (8, data.num_items) and summary.min() >= 0 and summary.max() <= 1
    assert ((summary > 0) & (summary < 1)).any()  # fractional, not a 0/1 sample
    first, best = distiller.history_[0]["val_ndcg@10"], distiller.val_ndcg_
    # The summary it started from (8 random real users) scores below what it learned.
    from sampling.models.base import binary, interaction_matrix

    x = binary(interaction_matrix(data.column("user") - 1, data.column("item") - 1, data.column("rating"),
                                  data.num_users, data.num_items))  # fmt: skip
    fit_part, val = _holdout(x, 0.1, 1)
    users = np.flatnonzero(np.diff(val.indptr))
    start = fit_part[np.random.default_rng(2).choice(users, 8, replace=False)].toarray().astype(np.float32)
    assert best >= first and best > _validation_ndcg(start, fit_part, val, users, 0.1) + 0.02
    out = distiller.to_interactions()
    frame = out.raw_interactions()
    assert set(frame["user"]) <= {f"distill-{i}" for i in range(8)}
    assert set(frame["item"]) <= set(data.vocabs["item"].values.tolist())
    assert len(frame) == int((summary > 0).sum()) and np.allclose(np.sort(frame["rating"]), np.sort(summary[summary > 0]))


def test_budget_as_fraction_or_count():
    assert DistillCF(budget=0.01).summary_users(943) == 9
    assert DistillCF(budget=0.001).summary_users(943) == 1  # never zero users
    assert DistillCF(budget=20).summary_users(943) == 20


def test_cli_distill_cf_writes_a_parquet_summary(data, tmp_path):
    from fedrec.cli import main

    log = tmp_path / "log.csv"
    data.raw_interactions()[["user", "item", "rating", "timestamp"]].to_csv(log, index=False, header=False)
    out, report = tmp_path / "summary.parquet", tmp_path / "r.json"
    args = ["sample", "--input", str(log), "--format", "csv", "--method", "distill-cf", "--rate", "0.02",
            "--out", str(out), "--report", str(report)]  # fmt: skip
    assert main(args) == 0
    kept = pd.read_parquet(out)
    assert kept["user"].nunique() == 5 and kept["user"].str.startswith("distill-").all()
    assert kept["rating"].between(0, 1, inclusive="right").all() and (kept["rating"] < 1).any()
    assert '"method": "distill-cf"' in report.read_text()


def test_same_seed_same_summary(data):
    a, b, c = (DistillCF(budget=4, steps=10, eval_every=5, seed=s).fit(data).summary_ for s in (3, 3, 4))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_without_validation_it_trains_for_all_steps_and_keeps_the_last_summary(data):
    d = DistillCF(budget=4, steps=12, eval_every=5, patience=5, validation_fraction=0.0, seed=2, init="nmf").fit(data)
    assert d.best_step_ == 12 and d.history_ == [] and np.isnan(d.val_ndcg_)
    assert d.summary_.shape == (4, data.num_items) and d.summary_.max() <= 1


def _blocks(n_blocks=4, users=30, items=25, seed=0):
    """Users in ``n_blocks`` groups, each consuming only its own block of items."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n_blocks * users, n_blocks * items), dtype=np.float32)
    for b in range(n_blocks):
        x[b * users:(b + 1) * users, b * items:(b + 1) * items] = rng.random((users, items)) < 0.5
    return sp.csr_matrix(x)


def test_nmf_start_gives_each_block_its_own_row():
    x = _blocks()
    logits = _nmf_logits(x, 4, 5.0, seed=0)
    draws = _gumbel_sum(logits, 5.0, 12, seed=1).numpy()  # one Gumbel sum, as learning draws it
    mass = draws.reshape(4, 4, 25).sum(axis=2)  # rows x blocks
    owner = mass.argmax(axis=0)
    assert sorted(owner) == [0, 1, 2, 3]  # every block is some row's, and each row owns one block
    assert (mass.max(axis=0) / mass.sum(axis=0) > 0.8).all()  # ... with most of that block's mass


def test_the_start_is_scored_before_learning(data):
    d = DistillCF(budget=5, steps=20, eval_every=10, seed=4, init="nmf").fit(data)
    assert [h["step"] for h in d.history_] == [0, 10, 20]
    assert d.val_ndcg_ == max(h["val_ndcg@10"] for h in d.history_)
    with pytest.raises(ValueError, match="init"):
        DistillCF(init="kmeans")


def test_zero_steps_keep_the_start(data):
    d = DistillCF(budget=4, steps=0, validation_fraction=0.0, seed=2, init="nmf").fit(data)
    assert d.best_step_ == 0 and d.summary_.shape == (4, data.num_items)


def _timed_log(times: dict[int, list[int]]):
    """User u consumed items 0, 1, 2, ... at ``times[u]`` (item k at the k-th time)."""
    from data_pipeline.schema import build_interactions

    rows = [(f"u{u}", f"i{k}", 1.0, t) for u, ts in times.items() for k, t in enumerate(ts)]
    return build_interactions("timed", pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"]))


def test_validation_holds_out_each_users_latest_interactions_when_the_log_has_times():
    # u0's latest are items 3 and 0 (times 90 and 80); u1's latest is item 1 (time 50).
    log = _timed_log({0: [80, 10, 20, 90, 30, 40, 50, 60, 70, 5], 1: [10, 50, 20, 30, 40]})
    d = DistillCF(budget=1, validation_fraction=0.2)
    fit_part, val = d._split(log, d._matrix(log))
    item = {v: k for k, v in enumerate(log.vocabs["item"].decode(np.arange(1, 11)))}
    user = {v: k for k, v in enumerate(log.vocabs["user"].decode(np.arange(1, 3)))}
    held = {(u, i) for u, i in zip(*val.nonzero())}
    assert held == {(user["u0"], item["i3"]), (user["u0"], item["i0"]), (user["u1"], item["i1"])}
    assert fit_part.nnz == 15 - 3 and fit_part.multiply(val).nnz == 0
    # the same log read as a bare matrix (no times) gets a random part instead; "latest" refuses it
    assert DistillCF(budget=1, validation_fraction=0.2)._split(fit_part + val, fit_part + val)[1].nnz == 3
    with pytest.raises(ValueError, match="timestamps, got a matrix"):
        DistillCF(budget=1, validation="latest")._split(fit_part + val, fit_part + val)
    with pytest.raises(ValueError, match="validation"):
        DistillCF(validation="oldest")


def test_best_start_keeps_the_start_that_scores_best_on_validation(data):
    best = DistillCF(budget=4, steps=20, eval_every=10, seed=5, init="best").fit(data)
    alone = {s: DistillCF(budget=4, steps=20, eval_every=10, seed=5, init=s).fit(data) for s in ("users", "nmf")}
    assert best.start_val_ndcg_ == {s: d.val_ndcg_ for s, d in alone.items()}  # each start learned as alone
    assert best.init_ == max(alone, key=lambda s: alone[s].val_ndcg_)
    assert np.array_equal(best.summary_, alone[best.init_].summary_) and best.best_step_ == alone[best.init_].best_step_
    with pytest.raises(ValueError, match="validation_fraction"):
        DistillCF(init="best", validation_fraction=0.0)
