"""Where a module runs: one dtype/device rule for the whole compiler.

Trace examples, validation inputs, site modules and the visual projector all follow the module
they belong to, by the same rule (:func:`dtype_device`): the dtype and device of its first
floating-point parameter, else of its first floating-point buffer, else float32 on the device of
any tensor it holds (CPU when it holds none).  Floating-point first, because a layer's integer
tensors (position ids, quantisation tables) say nothing about the precision it computes in.
"""

from __future__ import annotations

from itertools import chain

import torch
from torch import nn


def dtype_device(module: nn.Module) -> tuple[torch.dtype, torch.device]:
    """The (dtype, device) ``module`` computes in; see the module docstring."""
    tensors = chain(module.parameters(), module.buffers())
    first = None
    for t in tensors:
        if t.is_floating_point():
            return t.dtype, t.device
        first = first if first is not None else t
    return torch.float32, (first.device if first is not None else torch.device("cpu"))
