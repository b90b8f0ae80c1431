"""Fixtures shared by the end-to-end tests on Ray."""

import pytest
import ray

from fedrec.runtime import ClientPool


@pytest.fixture(scope="module")
def pool():
    """A local 2-CPU Ray and a pool of 2 client actors, for one test module (its own Ray: modules
    such as the multi-node and ray-job tests start theirs)."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    with ClientPool(num_actors=2) as p:
        yield p
    ray.shutdown()
