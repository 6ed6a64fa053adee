"""Fixtures of the compiler tests (helpers live in compiler_cases.py)."""

import pytest
import torch

from compiler_cases import backbone  # noqa: F401  (a fixture)


@pytest.fixture(autouse=True)
def one_thread():
    """The backbones are tiny: intra-op threads only cost (15 s instead of 0.3 s for a generate test
    on a loaded 2-core machine).  Restored after each test so other folders keep their setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
