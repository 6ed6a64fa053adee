"""The projections a site can sit on: ``nn.Linear`` and transformers' ``Conv1D``, and column slices.

Both compute ``h = x W^T + b`` with W of shape (d_out, d_in) in nn.Linear's layout; ``Conv1D``
(GPT-2) stores the same map with its weight transposed, ``(d_in, d_out)``, and computes
``x @ weight + bias``.  Sites never look at the weight, so they work on either; merging and
LoRA's initialisation do, and read it through :func:`linear_weight`, which always speaks
nn.Linear's layout (merging transposes its folded weight back itself, see ``checkpoint.merge``).

A site may also own only a slice of a projection's output columns (GPT-2's fused ``c_attn``
computes ``[q | k | v]``; a site on ``q`` changes columns ``[0, d)``): :func:`apply_sites` runs
each site on its columns of h and leaves the others untouched, bit for bit, with one
concatenation for all the sliced sites of a projection (not one copy of h per site).
"""

from __future__ import annotations

import torch
from torch import nn


def _conv1d_type() -> type | None:
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # transformers is optional for the methods themselves
        return None
    return Conv1D


def projection_types() -> tuple[type, ...]:
    """The module types a projection site can rewrite."""
    conv = _conv1d_type()
    return (nn.Linear,) if conv is None else (nn.Linear, conv)


def is_projection(module) -> bool:
    return isinstance(module, projection_types())


def is_transposed(module) -> bool:
    """Whether the module stores its weight (d_in, d_out) (transformers' Conv1D)."""
    conv = _conv1d_type()
    return conv is not None and isinstance(module, conv)


def projection_dims(module) -> tuple[int, int]:
    """(d_in, d_out) of an nn.Linear or Conv1D."""
    if is_transposed(module):
        return module.nx, module.nf
    return module.in_features, module.out_features


def linear_weight(module) -> torch.Tensor:
    """The weight as an nn.Linear stores it, (d_out, d_in) (a view for Conv1D)."""
    return module.weight.t() if is_transposed(module) else module.weight


def apply_sites(sites, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """h after each ``(site, columns)`` of ``sites`` in order: ``site(x, h)`` on the whole output
    (columns None) or ``site(x, h[..., start:stop])`` on its column slice, the other columns as they
    were.  Each slice is cut once and chained through the sites on it; the results are written
    back with a single ``torch.cat`` (none without column sites), before any whole-output site or
    a site on an overlapping but different slice, which must see them."""
    # start -> (stop, current value) of each slice not yet written back into h; disjoint slices,
    # keyed by an int so that torch.compile can sort them (it cannot sort tuples)
    pending: dict[int, tuple[int, torch.Tensor]] = {}
    for site, columns in sites:
        if columns is None:
            h, pending = _write_back(h, pending), {}
            h = site(x, h)
            continue
        start, stop = columns
        same = start in pending and pending[start][0] == stop
        if not same and any(start < end and begin < stop for begin, (end, _) in pending.items()):
            h, pending = _write_back(h, pending), {}
            same = False
        pending[start] = (stop, site(x, pending[start][1] if same else h[..., start:stop]))
    return _write_back(h, pending)


def _write_back(h: torch.Tensor, pending: dict) -> torch.Tensor:
    """h with each (disjoint) slice of ``pending`` replaced by its value: one concatenation."""
    if not pending:
        return h
    pieces, at = [], 0
    for start in sorted(pending):
        stop, value = pending[start]
        if at < start:
            pieces.append(h[..., at:start])
        pieces.append(value)
        at = stop
    if at < h.shape[-1]:
        pieces.append(h[..., at:])
    return torch.cat(pieces, dim=-1)
