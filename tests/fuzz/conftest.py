"""Hypothesis profiles for the fuzz suite.

``default`` (what ``make test`` runs): few examples per property, derandomized so a run is
reproducible and a strict xfail stays strict; about a minute on 2 cores. ``fuzz`` (``make fuzz``,
or ``FEDREC_FUZZ=fuzz``): many more examples from a fresh random seed each run. Set
``FEDREC_FUZZ_EXAMPLES`` to override the example count of either.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = dict(
    deadline=None,  # one case runs a whole CLI command: timings vary with the machine's load
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
    print_blob=True,
)
settings.register_profile("default", max_examples=12, derandomize=True, database=None, **_COMMON)
settings.register_profile("fuzz", max_examples=300, **_COMMON)
_profile = os.environ.get("FEDREC_FUZZ", "default")
settings.load_profile(_profile)
if os.environ.get("FEDREC_FUZZ_EXAMPLES"):
    settings.register_profile(
        "custom", parent=settings.get_profile(_profile), max_examples=int(os.environ["FEDREC_FUZZ_EXAMPLES"])
    )
    settings.load_profile("custom")
