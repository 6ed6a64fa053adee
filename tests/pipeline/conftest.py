"""Fixtures of the end-to-end tests (models and batches live in pipeline_models.py)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """The backbones are tiny: intra-op threads only cost time on a loaded machine.  Restored after
    each test so other folders keep their setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
