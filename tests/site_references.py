"""Straight-line references shared by tests of several folders (this folder is on ``sys.path``
because it holds the root ``conftest.py``)."""

import torch


def one_cat_per_site(sites, x, h):
    """Projection sites applied in order, each writing its column slice back with its own
    ``torch.cat``: the meaning that ``methods.projections.apply_sites`` must keep bit for bit.
    ``sites``: ``(module, columns)`` pairs, columns ``(start, stop)`` or None for all of ``h``."""
    for site, columns in sites:
        if columns is None:
            h = site(x, h)
        else:
            start, stop = columns
            h = torch.cat((h[..., :start], site(x, h[..., start:stop]), h[..., stop:]), dim=-1)
    return h
