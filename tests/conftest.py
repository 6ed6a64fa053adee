"""Shared test settings: offline, deterministic, and two hypothesis profiles.

``ci`` (the default) keeps the suite fast; ``thorough`` runs many more examples:
``pytest --hypothesis-profile=thorough``.
"""

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


#: Test folders that run tiny models, where intra-op threads only cost time (15 s instead of 0.3 s
#: for a generate test on a loaded 2-core machine).
ONE_THREAD_FOLDERS = {"pipeline", "compiler", "families", "benchmarks"}


@pytest.fixture(autouse=True)
def one_thread(request):
    """One torch thread for the tests of :data:`ONE_THREAD_FOLDERS`, restored after each test so
    other folders keep their setting."""
    if Path(str(request.fspath)).parent.name not in ONE_THREAD_FOLDERS:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
