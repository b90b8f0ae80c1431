# Two set-up commands (README): `make demo` and `make test`. Every install step lives here.
# pip, not uv/poetry: pip takes the CPU torch wheel on disk; the others download a CUDA build.
VENV      ?= .venv
PY        := $(VENV)/bin/python
PIP       := $(PY) -m pip
PINS      := requirements/constraints.txt
STAMP     := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install demo test fuzz lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml $(PINS)
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	# torch first, from the pinned CPU build, so nothing later can pull a CUDA torch.
	$(PIP) install -q -c $(PINS) torch==2.13.0 fbgemm-gpu-cpu==1.8.0
	# torchrec names the CUDA fbgemm-gpu package: install it without deps, its real needs are in pyproject.
	$(PIP) install -q --no-deps torchrec==1.8.0
	$(PIP) install -q -c $(PINS) -e '.[dev]'
	touch $(STAMP)

demo: install
	$(VENV)/bin/fedrec demo

test: install
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q --durations=25 $(PYTEST_ARGS) tests

# The fuzz suite with many more examples per property (tests/fuzz/conftest.py: profile "fuzz", a new
# random seed each run); FEDREC_FUZZ_EXAMPLES=N sets the count. `make test` runs a small fixed set.
fuzz: install
	FEDREC_FUZZ=fuzz $(PY) -m pytest -q $(PYTEST_ARGS) tests/fuzz --hypothesis-show-statistics

lint: install
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
