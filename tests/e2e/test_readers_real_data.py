"""Every preset reader on the real release files: the counts MANIFEST.md publishes, the social
graphs in the interaction user ids, and ``fedrec data stats`` reporting them."""

import json

import numpy as np
import pytest

from data_pipeline.readers import (
    load_interactions,
    read_coat_split,
    read_filmtrust_trust,
    read_lastfm_friends,
    read_lastfm_tags,
)
from tests.conftest import require_dataset

# (format, path under the datasets root, rows, users, items): MANIFEST.md's published counts.
PUBLISHED = [
    ("movielens", "ml-latest-small", 100_836, 610, 9_724),
    ("lastfm", "hetrec2011-lastfm-2k", 92_834, 1_892, 17_632),
    ("filmtrust", "filmtrust", 35_497, 1_508, 2_071),
    ("citeulike", "citeulike-a", 204_986, 5_551, 16_980),
    ("coat", "coat", 6_960, 290, 300),
    ("coat", "coat/test.ascii", 4_640, 290, 300),
]
# Amazon 5-core: published review lines, and the (user, item) pairs left after collapsing repeats.
AMAZON = [("All_Beauty_5", 5_269, 991, 85), ("Gift_Cards_5", 2_972, 458, 148),
          ("AMAZON_FASHION_5", 3_176, 406, 31), ("Appliances_5", 2_277, 47, 48)]  # fmt: skip


@pytest.mark.parametrize("fmt, name, rows, users, items", PUBLISHED)
def test_published_counts(fmt, name, rows, users, items):
    data = load_interactions(require_dataset(name), fmt)
    assert (data.num_rows, data.num_users, data.num_items) == (rows, users, items)
    assert data.report.skipped == 0


def test_latest_small_genres_and_values():
    data = load_interactions(require_dataset("ml-latest-small"), "movielens")
    assert data.name == "ml-latest-small"
    assert sorted(np.unique(data.column("rating")).tolist()) == [x / 2 for x in range(1, 11)]
    assert data.item_features.num_rows == 9_742  # movies.csv lists 18 movies nobody rated
    genres = data.vocabs["item"].decode(data.item_features.column("item").to_numpy())
    assert (genres != None).sum() == 9_724  # noqa: E711 - rated movies keep their genres


@pytest.mark.parametrize("stem, reviews, users, items", AMAZON)
def test_amazon_reviews_and_collapsed_pairs(stem, reviews, users, items):
    data = load_interactions(require_dataset(f"amazon-2018-5core/{stem}.json.gz"), "amazon-json")
    assert data.num_rows + data.report.duplicates == reviews
    assert (data.num_users, data.num_items) == (users, items)
    pairs = data.column("user") * (data.num_items + 1) + data.column("item")
    assert np.unique(pairs).size == data.num_rows  # one row per (user, item)


def test_lastfm_friends_and_tags_in_interaction_ids():
    folder = require_dataset("hetrec2011-lastfm-2k")
    data = load_interactions(folder, "lastfm")
    graph = read_lastfm_friends(folder, data)
    assert (graph.raw_edges, graph.num_edges, graph.dropped_edges) == (25_434, 12_717, 0)
    assert graph.isolated_users().size == 0 and graph.num_users == data.num_users
    adj = graph.adjacency()
    assert (adj != adj.T).nnz == 0 and adj.nnz == 25_434
    first = data.vocabs["user"].decode(graph.edges[:3].ravel()).tolist()
    assert first[:2] == [2, 275]  # the file's first line, 2 <-> 275, in raw ids
    assignments, names = read_lastfm_tags(folder)
    assert len(assignments) == 186_479 and len(names) == 11_946


def test_filmtrust_trust_graph_drops_users_without_ratings():
    folder = require_dataset("filmtrust")
    data = load_interactions(folder, "filmtrust")
    graph = read_filmtrust_trust(folder, data)
    assert graph.raw_edges == 1_853 and graph.directed
    assert graph.num_edges + graph.dropped_edges == 1_853
    rated = set(data.vocabs["user"].values.tolist())
    assert graph.unknown_users.size > 0 and not set(graph.unknown_users.tolist()) & rated
    assert graph.isolated_users().size == data.num_users - (graph.degrees()[1:] > 0).sum()
    undirected = read_filmtrust_trust(folder, data, undirected=True)
    assert undirected.num_edges < graph.num_edges  # mutual trust counted once


def test_coat_split_train_mnar_test_mcar():
    data, test = read_coat_split(require_dataset("coat"))
    assert (int((~test).sum()), int(test.sum())) == (6_960, 4_640)
    assert (data.num_users, data.num_items) == (290, 300)
    per_user = np.bincount(data.column("user")[test], minlength=291)[1:]
    assert (per_user == 16).all()  # the MCAR set: 16 random items rated by every user


def test_data_stats_reports_graph_and_collapsed(capsys):
    from fedrec.cli import main

    assert (
        main(["data", "stats", str(require_dataset("hetrec2011-lastfm-2k")), "--format", "lastfm", "--json"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert (out["rows"], out["users"], out["items"]) == (92_834, 1_892, 17_632)
    assert out["social_graph"]["edges"] == 12_717 and out["social_graph"]["raw_edges"] == 25_434
    assert out["rating_counts"]["max"] == 352_698.0
    path = require_dataset("amazon-2018-5core/Appliances_5.json.gz")
    assert main(["data", "stats", str(path), "--format", "amazon-json", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["reviews"], out["rows"], out["collapsed_duplicates"]) == (2_277, 183, 2_094)
