"""Fixtures of the decoder-only family tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """The backbones are tiny: intra-op threads only cost time on a loaded machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
