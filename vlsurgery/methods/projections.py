"""The projections a site can sit on: ``nn.Linear`` and transformers' ``Conv1D``, and column slices.

Both compute ``h = x W^T + b`` with W of shape (d_out, d_in) in nn.Linear's layout; ``Conv1D``
(GPT-2) stores the same map with its weight transposed, ``(d_in, d_out)``, and computes
``x @ weight + bias``.  Sites never look at the weight, so they work on either; merging does, and
reads and writes the weight through :func:`linear_weight` / :func:`set_linear_weight`, which always
speak nn.Linear's layout.

A site may also own only a slice of a projection's output columns (GPT-2's fused ``c_attn``
computes ``[q | k | v]``; a site on ``q`` changes columns ``[0, d)``): :func:`apply_on_columns`
runs the site on those columns of h and leaves the others untouched, bit for bit.
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


@torch.no_grad()
def set_linear_weight(module, weight: torch.Tensor) -> None:
    """Copy a (d_out, d_in) weight into the module, in its own layout and dtype."""
    target = module.weight
    target.copy_((weight.t() if is_transposed(module) else weight).to(dtype=target.dtype, device=target.device))


def apply_on_columns(site, x: torch.Tensor, h: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """h with columns [start, stop) replaced by ``site(x, h[..., start:stop])``; other columns as they were."""
    return torch.cat((h[..., :start], site(x, h[..., start:stop]), h[..., stop:]), dim=-1)


def describe_columns(columns) -> str:
    """``[0:32]`` for a column slice, ``""`` for the whole output."""
    return "" if columns is None else f"[{columns[0]}:{columns[1]}]"
