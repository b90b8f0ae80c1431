"""The published-dataset readers on small hand-written files: values, ids, and the error contract
(file, 1-based line, field, expected, found) for each format's own kind of bad line."""

import gzip
import json

import numpy as np
import pytest

from data_pipeline.errors import DataFormatError, DatasetNotFoundError
from data_pipeline.readers import (
    INTERACTION_FORMATS,
    load_interactions,
    read_amazon_reviews,
    read_citeulike,
    read_coat,
    read_coat_split,
    read_filmtrust,
    read_filmtrust_trust,
    read_lastfm,
    read_lastfm_friends,
    read_lastfm_tags,
)


def _raw(data, col):
    return data.vocabs[col].decode(data.column(col)).tolist()


# ---- Last.fm -------------------------------------------------------------------------------
def _lastfm(tmp_path, artists="userID\tartistID\tweight\r\n2\t51\t13883\r\n2\t52\t11690\r\n3\t51\t7\r\n"):
    folder = tmp_path / "lastfm"
    folder.mkdir()
    (folder / "user_artists.dat").write_bytes(artists.encode())
    (folder / "user_friends.dat").write_bytes(b"userID\tfriendID\r\n2\t3\r\n3\t2\r\n2\t99\r\n")
    (folder / "user_taggedartists.dat").write_text(
        "userID\tartistID\ttagID\tday\tmonth\tyear\n2\t52\t13\t1\t4\t2009\n3\t52\t7\t1\t5\t2009\n2\t52\t13\t1\t6\t2009\n2\t500\t1\t1\t1\t2010\n"
    )
    (folder / "tags.dat").write_bytes("tagID\ttagValue\r\n7\tm\xfasica\r\n13\tmetal\r\n".encode("latin-1"))
    return folder


def test_lastfm_header_crlf_weights_and_tags(tmp_path):
    data = read_lastfm(_lastfm(tmp_path))
    assert (data.num_rows, data.num_users, data.num_items) == (3, 2, 2)
    assert _raw(data, "user") == [2, 2, 3] and _raw(data, "item") == [51, 52, 51]
    assert data.column("rating").tolist() == [13883.0, 11690.0, 7.0]  # play counts, not 1.0
    tags = dict(zip(data.vocabs["item"].decode(data.item_features.column("item").to_numpy()),
                    data.item_features.column("tags").to_pylist()))  # fmt: skip
    assert tags == {52: [7, 13]}  # distinct tags; artist 500 (never listened to) dropped
    assignments, names = read_lastfm_tags(tmp_path / "lastfm")
    assert len(assignments) == 4 and names == {7: "m\xfasica", 13: "metal"}
    assert assignments["timestamp"].iloc[0] == 1238544000  # 2009-04-01 UTC


def test_lastfm_bad_weight_names_line_and_field(tmp_path):
    folder = _lastfm(tmp_path, "userID\tartistID\tweight\r\n2\t51\t13883\r\n2\t52\t0\r\n")
    with pytest.raises(DataFormatError) as err:
        read_lastfm(folder)
    msg = str(err.value)
    assert (
        "user_artists.dat, line 3, field 'rating'" in msg
        and "positive integer play count" in msg
        and "'0'" in msg
    )


def test_lastfm_friends_in_interaction_ids(tmp_path):
    folder = _lastfm(tmp_path)
    data = read_lastfm(folder)
    graph = read_lastfm_friends(folder, data)
    assert graph.raw_edges == 3 and graph.dropped_edges == 1 and graph.unknown_users.tolist() == [99]
    assert graph.edges.tolist() == [[1, 2]]  # 2-3 listed both ways: one undirected edge
    assert data.vocabs["user"].decode(graph.edges[0]).tolist() == [2, 3]
    assert graph.isolated_users().size == 0
    directed = read_lastfm_friends(folder, data, undirected=False)
    assert directed.edges.tolist() == [[1, 2], [2, 1]]


def test_missing_lastfm_file(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="user_artists.dat"):
        read_lastfm(tmp_path)


# ---- FilmTrust ------------------------------------------------------------------------------
def test_filmtrust_ratings_and_trust(tmp_path):
    (tmp_path / "ratings.txt").write_text("1 1 2\n1 2 4\n2 1 3.5\n3 2 0.5\n2 1 3.5\n")
    (tmp_path / "trust.txt").write_text("1 2 1\n2 1 1\n3 1 1\n1 7 1\n4 7 1\n")
    data = read_filmtrust(tmp_path)
    assert (data.num_rows, data.num_users, data.num_items) == (5, 3, 2)
    assert data.column("rating").tolist() == [2.0, 4.0, 3.5, 0.5, 3.5]
    graph = read_filmtrust_trust(tmp_path, data)
    assert graph.directed and graph.edges.tolist() == [[1, 2], [2, 1], [3, 1]]
    assert graph.dropped_edges == 2 and sorted(graph.unknown_users.tolist()) == [4, 7]
    undirected = read_filmtrust_trust(tmp_path, data, undirected=True)
    assert undirected.edges.tolist() == [[1, 2], [1, 3]]
    adj = undirected.adjacency().toarray()
    assert (adj == adj.T).all() and adj.sum() == 4
    from data_pipeline.readers.filmtrust import repeated_pairs

    assert repeated_pairs(data) == 1


def test_filmtrust_isolated_user_is_a_node_without_edges(tmp_path):
    (tmp_path / "ratings.txt").write_text("1 1 2\n2 1 3\n5 2 1\n")
    (tmp_path / "trust.txt").write_text("1 2 1\n")
    data = read_filmtrust(tmp_path)
    graph = read_filmtrust_trust(tmp_path, data)
    assert graph.num_users == 3 and graph.isolated_users().tolist() == [3]  # raw user 5
    assert graph.to_dict()["isolated_users"] == 1


@pytest.mark.parametrize(
    "bad, field, found",
    [("2 1\n", None, "2 fields"), ("2 x 3\n", "item", "'x'"), ("2 1 three\n", "rating", "'three'")],
)
def test_filmtrust_bad_lines(tmp_path, bad, field, found):
    (tmp_path / "ratings.txt").write_text("1 1 2\n" + bad)
    with pytest.raises(DataFormatError) as err:
        read_filmtrust(tmp_path)
    msg = str(err.value)
    assert "ratings.txt, line 2" in msg and found in msg
    assert (f"field '{field}'" in msg) if field else "3 space-separated fields" in msg


# ---- CiteULike --------------------------------------------------------------------------------
def test_citeulike_lines_are_users(tmp_path):
    (tmp_path / "users.dat").write_text("3 0 5 9\n1 5\n2 9 0")  # no final newline, as released
    data = read_citeulike(tmp_path)
    assert data.num_rows == 6
    assert _raw(data, "user") == [0, 0, 0, 1, 2, 2] and _raw(data, "item") == [0, 5, 9, 5, 9, 0]
    assert set(data.column("rating").tolist()) == {1.0}


@pytest.mark.parametrize(
    "bad, field, found",
    [
        ("3 1 2\n", "count", "2 ids"),
        ("x 1\n", "count", "'x'"),
        ("2 1 b\n", "item", "'b'"),
        ("1 -4\n", "item", "'-4'"),
    ],
)
def test_citeulike_bad_lines(tmp_path, bad, field, found):
    (tmp_path / "users.dat").write_text("2 0 1\n" + bad + "1 3\n")
    with pytest.raises(DataFormatError) as err:
        read_citeulike(tmp_path / "users.dat")
    msg = str(err.value)
    assert "users.dat, line 2" in msg and f"field '{field}'" in msg and found in msg
    skipped = read_citeulike(tmp_path, on_bad_lines="skip")
    assert skipped.num_rows == 3 and skipped.report.skipped == 1 and skipped.report.examples[0].line == 2


# ---- Coat -------------------------------------------------------------------------------------
def _coat(tmp_path, train="0 3 0\r\n5 0 0\r\n", test="1 0 0\r\n0 0 2\r\n"):
    (tmp_path / "train.ascii").write_text(train)
    (tmp_path / "test.ascii").write_text(test)
    return tmp_path


def test_coat_matrix_cells(tmp_path):
    data = read_coat(_coat(tmp_path))
    assert data.name == "coat-train"
    assert (
        _raw(data, "user") == [0, 1]
        and _raw(data, "item") == [1, 0]
        and data.column("rating").tolist() == [3.0, 5.0]
    )
    both, test = read_coat_split(tmp_path)
    assert both.num_rows == 4 and test.tolist() == [False, False, True, True]
    assert _raw(both, "item") == [1, 0, 0, 2]
    assert both.column("timestamp")[test].min() > both.column("timestamp")[~test].max()


@pytest.mark.parametrize(
    "train, field, found",
    [
        ("0 3 0\n5 0\n", None, "2 columns"),
        ("0 3 0\n5 0 7\n", "column 3", "'7'"),
        ("0 3 0\n5 a 0\n", "column 2", "'a'"),
    ],
)
def test_coat_bad_rows(tmp_path, train, field, found):
    with pytest.raises(DataFormatError) as err:
        read_coat(_coat(tmp_path, train=train))
    msg = str(err.value)
    assert "train.ascii, line 2" in msg and found in msg
    assert (f"field '{field}'" in msg) if field else "3 space-separated columns" in msg


# ---- Amazon -----------------------------------------------------------------------------------
def _review(user, item, rating, time, **extra):
    return json.dumps(
        {
            "overall": rating,
            "reviewerID": user,
            "asin": item,
            "unixReviewTime": time,
            "reviewText": "ok",
            **extra,
        }
    )


def test_amazon_gzip_duplicates_collapsed_into_earliest(tmp_path):
    path = tmp_path / "Cat_5.json.gz"
    lines = [
        _review("A", "X", 5.0, 30),
        _review("A", "X", 1.0, 10),
        _review("B", "X", 4.0, 20),
        _review("A", "Y", 2.0, 5),
        _review("A", "X", 3.0, 10),
    ]
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    data = read_amazon_reviews(path)
    assert data.name == "amazon-Cat_5" and data.num_rows == 3
    assert (
        data.report.duplicates == 2 and "2 repeated (user, item) reviews collapsed" in data.report.summary()
    )
    rows = sorted(
        zip(
            _raw(data, "user"),
            _raw(data, "item"),
            data.column("rating").tolist(),
            data.column("timestamp").tolist(),
        )
    )
    assert rows == [("A", "X", 1.0, 10), ("A", "Y", 2.0, 5), ("B", "X", 4.0, 20)]


@pytest.mark.parametrize(
    "line, field, found",
    [
        ('{"reviewerID": "A", "overall": 5.0, "unixReviewTime": 1}', "asin", "'no such key'"),
        (_review("A", "X", "five", 1), "overall", "'five'"),
        (_review("A", "X", 5.0, 1.5), "unixReviewTime", "1.5"),
        ("{not json", None, "'{not json'"),
    ],
)
def test_amazon_bad_lines(tmp_path, line, field, found):
    path = tmp_path / "r.json"
    path.write_text(_review("A", "X", 5.0, 1) + "\n" + line + "\n")
    with pytest.raises(DataFormatError) as err:
        read_amazon_reviews(path)
    msg = str(err.value)
    assert "r.json, line 2" in msg and found in msg
    if field:
        assert f"field '{field}'" in msg
    assert read_amazon_reviews(path, on_bad_lines="skip").report.skipped == 1


def test_amazon_truncated_gzip_is_named(tmp_path):
    path = tmp_path / "r.json.gz"
    blob = gzip.compress(("\n".join(_review("A", str(i), 5.0, i) for i in range(2000)) + "\n").encode())
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataFormatError, match="r.json.gz, line .*gzip"):
        read_amazon_reviews(path)


def test_presets_are_formats_of_load_interactions(tmp_path):
    assert {"lastfm", "filmtrust", "citeulike", "coat", "amazon-json"} <= set(INTERACTION_FORMATS)
    (tmp_path / "ratings.txt").write_text("1 1 2\n")
    assert load_interactions(tmp_path, "filmtrust").num_rows == 1
    assert np.array_equal(load_interactions(_coat(tmp_path), "coat").column("rating"), [3.0, 5.0])
