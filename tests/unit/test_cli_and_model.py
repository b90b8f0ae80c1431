import json

import numpy as np
import pytest
import torch

from data_pipeline.features import interaction_examples
from fedrec.central import load_checkpoint, save_checkpoint
from fedrec.cli import build_parser, main
from fedrec.metrics import binary_metrics
from fedrec.model import ModelConfig, build_model, forward_logits
from tests.unit.test_data_core import _toy


def _subcommands(parser, prefix=()):
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from _subcommands(sub, (*prefix, name))


def test_every_command_has_help_with_example():
    commands = list(_subcommands(build_parser()))
    assert {("data", "stats"), ("train",), ("demo",)} <= {c for c, _ in commands}
    for name, parser in commands:
        if name in (("data",),):
            continue
        assert "example" in (parser.epilog or ""), f"fedrec {' '.join(name)} --help lacks an example"


def test_cli_stats_json_and_bad_row_exit_2(tmp_path, capsys):
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "u.data").write_text("1\t10\t5\t1\n2\t11\t4\t2\n")
    assert main(["data", "stats", str(folder), "--format", "movielens", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["rows"], out["users"], out["items"]) == (2, 2, 2)
    (folder / "u.data").write_text("1\t10\t5\t1\n2\t11\tx\t2\n")
    assert main(["data", "stats", str(folder), "--format", "movielens"]) == 2
    err = capsys.readouterr().err
    assert "u.data" in err and "line 2" in err and "Traceback" not in err


def test_cli_synth_then_stats(tmp_path, capsys):
    out = tmp_path / "s.tsv"
    assert main(["data", "synth", "--rows", "2000", "--max-cardinality", "500", "--seed", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["data", "stats", str(out), "--format", "criteo", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["rows"] == 2000 and len(stats["features"]) == 39
    assert all(f["cardinality"] <= 500 for f in stats["features"][13:])


def test_metrics_known_values():
    m = binary_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    assert m["auc"] == pytest.approx(0.75)
    base = binary_metrics(np.array([0, 1, 0, 1]), np.full(4, 0.5))
    assert base["ne"] == pytest.approx(1.0)


def test_dlrm_forward_backward_and_checkpoint(tmp_path):
    ex = interaction_examples(_toy(), features=("user", "item"))
    model = build_model(ex.spec, ModelConfig(embedding_dim=8), seed=0)
    batch = ex.batch(np.arange(8))
    logits = forward_logits(model, batch)
    assert logits.shape == (8,)
    torch.nn.functional.binary_cross_entropy_with_logits(logits, batch.labels).backward()
    save_checkpoint(model, tmp_path / "m.pt", {"k": 1})
    other = build_model(ex.spec, ModelConfig(embedding_dim=8), seed=1)
    assert load_checkpoint(other, tmp_path / "m.pt") == {"k": 1}
    assert torch.allclose(forward_logits(other, batch), logits)
