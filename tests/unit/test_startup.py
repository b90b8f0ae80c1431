"""Start-up: what loading a config imports, the lazy package exports, and the CLI's exit codes."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import types

import pytest

LAZY_PACKAGES = ["fedrec.algorithms", "fedrec.attacks", "fedrec.pipeline", "fedrec.pipeline.robust",
                 "fedrec.privacy", "fedrec.runtime", "fedrec.secagg", "fedrec.strategies"]


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_loading_a_config_imports_neither_torch_nor_ray(tmp_path):
    # The CLI imports torch on a thread while Ray starts; a config load that imported torch would
    # serialize the two again (and make every bad-config error wait seconds for torch).
    path = tmp_path / "c.yaml"
    path.write_text("rounds: 3\nstrategy: {name: fedyogi}\naggregator: {name: mean}\n"
                    "privacy: {noise_multiplier: 1.0}\nsecure_aggregation: {enabled: false}\n")
    done = _python(f"import sys, fedrec; fedrec.load_config({str(path)!r}); "
                   "print(sorted(m for m in ('torch', 'ray', 'torchrec', 'sklearn') if m in sys.modules))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_lazy_exports_resolve_to_their_objects_after_every_submodule_loads(package):
    # Importing a submodule sets the package attribute of its name: an export named like a
    # submodule would then be the module, not the object (``stack`` was, until renamed).
    module = importlib.import_module(package)
    for sub in pkgutil.iter_modules(module.__path__):
        importlib.import_module(f"{package}.{sub.name}")
    for name in module.__all__:
        value = getattr(module, name)
        assert not isinstance(value, types.ModuleType), f"{package}.{name} is a module"


def test_unknown_attribute_of_a_lazy_package_is_an_attribute_error():
    import fedrec.strategies

    with pytest.raises(AttributeError, match="no attribute 'FedNope'"):
        fedrec.strategies.FedNope  # noqa: B018


@pytest.mark.parametrize(("argv", "code"), [(["--help"], 0), (["train", "--bogus"], 2),
                                            (["train", "--config", "/nonexistent/c.yaml"], 2), ([], 2)])
def test_cli_entry_keeps_the_exit_status(argv, code):
    # entry() leaves through os._exit to skip torch's slow teardown: the status must survive it.
    done = subprocess.run([sys.executable, "-m", "fedrec.cli", *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == code, done.stderr
    if code == 2 and argv:
        assert done.stderr.strip().splitlines()[-1].startswith("fedrec: error:")


def test_cli_entry_flushes_stdout_before_its_fast_exit(tmp_path):
    # Written to a pipe stdout is block-buffered: a fast exit that did not flush would lose it.
    done = subprocess.run([sys.executable, "-m", "fedrec.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert "usage: fedrec" in done.stdout


def test_start_ray_starts_its_own_instance_unless_ray_address_names_one(monkeypatch):
    # Without address="local", ray.init joins whatever cluster `ray start` last recorded under
    # /tmp/ray, even a stopped one; a benchmark then hung on a test's dead GCS.
    import ray

    from fedrec.runtime import ray_runtime

    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray_runtime.start_ray(2)
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    ray_runtime.start_ray()
    assert calls[0]["address"] == "local" and calls[0]["num_cpus"] == 2
    assert calls[1]["address"] == "auto"
