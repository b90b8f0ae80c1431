"""``fedrec sample`` and ``fedrec sample evaluate`` through ``fedrec.cli.main``; bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fedrec.cli import main
from sampling.synthetic import zipf_interactions


@pytest.fixture(scope="module")
def log_csv(tmp_path_factory):
    data = zipf_interactions("cli", users=400, items=120, density=0.06, seed=2)
    frame = data.raw_interactions()
    frame["user"] = "u" + frame["user"].astype(str)  # raw ids that are not the encoded ones
    path = tmp_path_factory.mktemp("cli") / "log.csv"
    frame[["user", "item", "rating", "timestamp"]].to_csv(path, index=False, header=False)
    return path, frame


def _sample(path, tmp_path, *extra):
    out, report = tmp_path / "s.parquet", tmp_path / "r.json"
    args = ["sample", "--input", str(path), "--format", "csv", "--rate", "0.2", "--out", str(out), "--report", str(report)]
    return main(args + list(extra)), out, report


def test_sample_writes_subset_with_raw_ids(log_csv, tmp_path):
    path, frame = log_csv
    code, out, report = _sample(path, tmp_path, "--method", "random", "--seed", "4")
    assert code == 0
    kept = pd.read_parquet(out)
    assert list(kept.columns) == ["user", "item", "rating", "timestamp"]
    assert abs(len(kept) / len(frame) - 0.2) <= 0.01
    rows = set(map(tuple, frame.astype(str).to_numpy()))
    assert all(tuple(r) in rows for r in kept.astype(str).to_numpy())  # a subset, original ids
    r = json.loads(report.read_text())
    assert r["method"] == "random" and r["rows_before"] == len(frame) and r["rows_after"] == len(kept)
    assert r["rate"] == pytest.approx(len(kept) / len(frame))
    for key in ("users_before", "users_after", "items_before", "items_after", "predicted_tau"):
        assert key in r


def test_sample_recbole_inter_and_user_method(log_csv, tmp_path):
    path, _ = log_csv
    out = tmp_path / "s.inter"
    assert main(["sample", "--input", str(path), "--format", "csv", "--rate", "0.3", "--method", "user",
                 "--out", str(out), "--report", str(tmp_path / "r.json")]) == 0  # fmt: skip
    lines = out.read_text().splitlines()
    assert lines[0] == "user_id:token\titem_id:token\trating:float\ttimestamp:float"
    assert lines[1].split("\t")[0].startswith("u")


def test_evaluate_form(log_csv, tmp_path):
    path, _ = log_csv
    out = tmp_path / "tau.json"
    code = main(["sample", "evaluate", "--input", str(path), "--format", "csv", "--rates", "0.4",
                 "--methods", "random,user", "--models", "popularity,item-knn,ease", "--seeds", "0",
                 "--json", str(out), "--cache", str(tmp_path / "cache"), "--quiet"])  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    assert set(result["tau"]) == {"random", "user"}
    assert set(result["tau"]["random"]["0.4"]) == {"auc", "hr@10", "ndcg@10", "psp@10", "all"}
    assert (tmp_path / "tau.png").stat().st_size > 0


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--rate", "0"], "rate"),
        (["--rate", "1.5"], "rate"),
        (["--rate", "0.0001"], "too small"),
        (["--columns", "user,rating,timestamp"], "item"),
        (["--out-suffix", ".csv"], "parquet"),
    ],
)
def test_bad_input_is_one_clear_line(log_csv, tmp_path, capsys, extra, message):
    path, _ = log_csv
    out = tmp_path / ("s.csv" if "--out-suffix" in extra else "s.parquet")
    extra = [] if "--out-suffix" in extra else extra
    args = ["sample", "--input", str(path), "--format", "csv", "--rate", "0.2", "--method", "random",
            "--out", str(out), "--report", str(tmp_path / "r.json"), *extra]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_unknown_method_and_missing_arguments(log_csv, tmp_path, capsys):
    path, _ = log_csv
    with pytest.raises(SystemExit) as exc:
        main(["sample", "--input", str(path), "--format", "csv", "--rate", "0.2", "--method", "magic", "--out", "x.parquet"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err
    assert main(["sample", "--input", str(path), "--format", "csv", "--out", str(tmp_path / "s.parquet")]) == 2
    assert "--rate" in capsys.readouterr().err
    assert main(["sample", "evaluate", "--input", str(path), "--format", "csv", "--methods", "nope",
                 "--json", str(tmp_path / "t.json")]) == 2  # fmt: skip
    assert "methods" in capsys.readouterr().err


def test_help_has_examples_and_shows_json_required(capsys):
    for argv in (["sample", "--help"], ["sample", "evaluate", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        out = capsys.readouterr().out
        assert "example" in out
    usage = out.split("\n\n")[0]
    assert "--json JSON" in usage and "[--json" not in usage and "[--png PNG]" in usage


def test_outputs_are_checked_first_and_written_whole(log_csv, tmp_path, capsys):
    path, _ = log_csv
    out, report = tmp_path / "new" / "s.parquet", tmp_path / "new" / "r.txt"
    args = ["sample", "--input", str(path), "--format", "csv", "--rate", "0.2", "--method", "random",
            "--out", str(out), "--report", str(report)]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--report" in err and ".json" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "new").exists() or not any((tmp_path / "new").iterdir())
    assert main(args[:-1] + [str(tmp_path / "new" / "r.json")]) == 0  # parent folder made
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["r.json", "s.parquet"]  # no temporaries left
    bad = ["sample", "evaluate", "--input", str(path), "--format", "csv", "--methods", "random", "--rates", "0.5",
           "--models", "nope", "--json", str(tmp_path / "ev" / "t.json")]  # fmt: skip
    assert main(bad) == 2 and not (tmp_path / "ev").exists() or not any((tmp_path / "ev").iterdir())


def test_python_api_mirrors_cli(log_csv):
    import sampling

    path, frame = log_csv
    result = sampling.sample(path, 0.25, "head-user", seed=1, format="csv")
    assert isinstance(result, sampling.SampleResult)
    assert result.rows_after == result.data.num_rows and abs(result.rate - 0.25) <= 0.01
    deg = np.bincount(result.data.column("user"))
    assert result.users_after == int((deg > 0).sum())


def test_auto_and_min_tau_use_the_shipped_genie(log_csv, tmp_path):
    import sampling

    path, _ = log_csv
    auto = sampling.sample(path, 0.3, "auto", format="csv")
    genie = sampling.DataGenie.load()
    features = sampling.meta_features(sampling.load(path, "csv")) if genie.uses_features else None
    taus = genie.predict_many(features, genie.methods_, [0.3])[:, 0]
    assert auto.requested_method == "auto" and auto.method == genie.methods_[int(np.argmax(taus))]
    assert auto.predicted_tau == pytest.approx(taus.max())
    plan = sampling.smallest_rate(path, 0.3, format="csv")
    assert 0 < plan.rate <= 1 and plan.predicted_tau >= 0.3
    out, report = tmp_path / "m.parquet", tmp_path / "m.json"
    assert main(["sample", "--input", str(path), "--format", "csv", "--min-tau", "0.3", "--out", str(out),
                 "--report", str(report)]) == 0  # fmt: skip
    r = json.loads(report.read_text())
    assert r["min_tau"] == 0.3 and r["predicted_tau"] >= 0.3 and r["requested_rate"] == plan.rate
    assert main(["sample", "--input", str(path), "--format", "csv", "--min-tau", "1.5", "--out", str(out)]) == 2
    assert main(["sample", "--input", str(path), "--format", "csv", "--rate", "0.2", "--min-tau", "0.5",
                 "--out", str(out)]) == 2  # fmt: skip


def test_parser_needs_no_torch_and_names_match_the_registries():
    import subprocess
    import sys

    code = ("import sys, argparse; import sampling.cli as c; p = argparse.ArgumentParser(); "
            "c.register(p.add_subparsers()); print('torch' in sys.modules)")  # fmt: skip
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    from sampling import names
    from sampling.models import MODEL_NAMES
    from sampling.samplers import SAMPLERS

    assert tuple(SAMPLERS) == names.SAMPLER_NAMES and set(names.DEFAULT_MODELS) <= set(MODEL_NAMES)
