import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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
