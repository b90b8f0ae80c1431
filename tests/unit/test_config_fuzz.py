"""Fuzzed run configs: whatever a YAML file holds, reading it ends in a valid config or one
``ConfigError`` line naming a field; never another exception. And the CLI turns unreadable config
files into one line and exit status 2."""

import copy

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_pipeline.errors import ConfigError
from fedrec.cli import main
from fedrec.config import FederatedConfig, config_from_dict, config_to_dict, load_config

BASES = [config_to_dict(load_config(f"configs/{n}.yaml")) for n in
         ("ml100k_fedavg", "ml100k_fedbuff", "ml100k_fel", "ml100k_tiers_rf2", "ml100k_private_user")]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=12), st.binary(max_size=8).map(lambda b: b.decode("latin-1")))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=8)


def _paths(doc, prefix=()):
    for key, value in doc.items():
        yield (*prefix, key)
        if isinstance(value, dict):
            yield from _paths(value, (*prefix, key))


@st.composite
def mutated(draw):
    doc = copy.deepcopy(draw(st.sampled_from(BASES)))
    paths = list(_paths(doc))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths))
        target = doc
        for key in path[:-1]:
            target = target[key] if isinstance(target, dict) else {}
        if isinstance(target, dict):
            if draw(st.booleans()):
                target[path[-1]] = draw(values)
            else:
                target[draw(st.text(min_size=1, max_size=10))] = draw(values)
    return doc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_a_mutated_config_is_valid_or_one_named_error(doc):
    try:
        cfg = config_from_dict(doc)
    except ConfigError as exc:
        text = str(exc)
        assert text.startswith("config field '") and "\n" not in text
        return
    assert isinstance(cfg, FederatedConfig)
    assert config_from_dict(config_to_dict(cfg)) == cfg  # what validates also round-trips


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_as_a_config_file_are_one_line_and_exit_2(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("cfg") / "x.yaml"
    path.write_bytes(blob)
    try:
        text = blob.decode("utf-8")
        parsed = yaml.safe_load(text)
    except Exception:
        parsed = None
    if isinstance(parsed, dict) and not parsed:
        return  # an empty mapping is the default config: a valid (long) run
    try:
        load_config(path)
    except ConfigError as exc:
        assert "\n" not in str(exc)


def test_cli_names_a_broken_config_in_one_line(tmp_path, capsys):
    cases = {"binary.yaml": b"\x7fELF\x02\x01\x01\x00" + bytes(range(40)), "list.yaml": b"- 1\n- 2\n",
             "tabs.yaml": b"rounds:\t3\n  bad: [\n", "badfield.yaml": b"rounds: 2.5\n"}
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
        assert main(["train", "--config", str(tmp_path / name)]) == 2, name
        err = capsys.readouterr().err.strip()
        assert err.startswith("fedrec: error: config field") and "\n" not in err and "Traceback" not in err, (name, err)
    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_a_dotted_override_through_a_missing_section_names_the_field():
    """``with_`` (and ``load_config``'s overrides) reach into sections by dotted names; a name
    whose parent is not a section (unknown, or a scalar) is one ConfigError naming the override,
    not a KeyError or TypeError from inside the copy."""
    cfg = load_config("configs/ml100k_fedavg.yaml")
    for key, parent in (("bogus.lr", "bogus"), ("client.lr.x", "client.lr")):
        try:
            cfg.with_(**{key: 1})
        except ConfigError as exc:
            assert str(exc) == f"config field '{key}': '{parent}' is not a section of this config", str(exc)
        else:
            raise AssertionError(f"{key} was accepted")
    assert cfg.with_(**{"client.lr": 0.2}).client.lr == 0.2
