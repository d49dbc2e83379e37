import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: a worker per core, at most 4. Most tests spend their time in one Python thread
    (torch's reference, argument checks), so a worker per core keeps the cores busy (CI: .ci/run);
    more than 4 would mostly multiply the memory of the workers' imports (torch, jax)."""
    return max(1, min(4, len(os.sched_getaffinity(0))))


@pytest.fixture(autouse=True)
def _restore_threads():
    """Every test leaves losskit's thread count as it found it."""
    import losskit

    n = losskit.get_num_threads()
    yield
    losskit.set_num_threads(n)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
