"""The bottleneck modification dH of adapters and VL-PET, with VL-PET's multi-head down-projection.

Maths (``src`` = H for ``sequential`` placement, X for ``parallel``)::

    dH = scaling * Up(act(Down(src)))          Down: d_src -> r,  Up: r -> d_out,  both with bias
    Down(src) = concat_i (W_i src + b_i)       h heads W_i: (r/h, d_src), b_i: (r/h,)

The h heads are exactly the row blocks of one (r, d_src) matrix, so they run as ONE fused matrix
multiply: ``down.weight[i*r/h:(i+1)*r/h]`` is head i's weight and ``down.bias[i*r/h:(i+1)*r/h]``
its bias (:meth:`Bottleneck.head` returns these views).  Initialisation is done per head, in head
order, exactly as ``h`` separate ``nn.Linear(d_src, r/h)`` would be built one after the other
(weight then bias, kaiming-uniform with a=sqrt(5), bias U(-1/sqrt(d_src), 1/sqrt(d_src))), followed
by ``Up`` as ``nn.Linear(r, d_out)`` (or zeros with ``init="zero"``).  So ``torch.manual_seed(s)``
before building gives the same weights as the reference's separate heads built after the same seed.

Parameters: ``d_src*r + r + r*d_out + d_out`` whatever h is.
Identity: :meth:`make_identity_` zeroes Up (weight and bias), so dH == 0 exactly.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import skip_init

from vlsurgery.errors import UsageError
from vlsurgery.methods.activations import make_activation
from vlsurgery.methods.counts import bottleneck_count  # noqa: F401 (re-exported)


@torch.no_grad()
def init_like_linear_(weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    """Initialise (views of) a weight (out, in) and bias (out,) exactly as ``nn.Linear`` does."""
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in = weight.shape[1]
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        nn.init.uniform_(bias, -bound, bound)


def init_up_(up: nn.Linear, init: str) -> None:
    """An up-projection: zero (``init=zero``: its output starts at exactly 0) or like ``nn.Linear``."""
    if init == "zero":
        up.weight.zero_()
        up.bias.zero_()
    else:
        init_like_linear_(up.weight, up.bias)


class Bottleneck(nn.Module):
    """dH = scaling * Up(act(Down(src))), Down split into ``heads`` heads fused in one Linear.

    Args:
        d_src: width of what Down reads (d_out of H for sequential, d_in of X for parallel).
        r: bottleneck width; ``heads`` must divide it.
        d_out: width of H (and of dH).
        heads: number of down-projection heads (each d_src -> r/heads).
        activation: a name from :data:`params.ACTIVATIONS` (default ``gelu_new``).
        placement: ``sequential`` (reads H) or ``parallel`` (reads X).
        init: ``default`` (Up like nn.Linear) or ``zero`` (Up zero: dH starts at 0).
        scaling: constant factor on dH (1.0: none).

    Call: ``bottleneck(x, h) -> dH`` of shape (..., d_out).
    """

    def __init__(self, d_src: int, r: int, d_out: int, *, heads: int = 1, activation: str = "gelu_new",
                 placement: str = "sequential", init: str = "default", scaling: float = 1.0):
        super().__init__()
        if r % heads:
            raise UsageError(f"heads={heads} must divide r={r}")
        if placement not in ("sequential", "parallel"):
            raise UsageError(f"placement must be sequential or parallel, not {placement!r}")
        if init not in ("default", "zero"):
            raise UsageError(f"init must be default or zero, not {init!r}")
        self.heads, self.placement, self.init, self.scaling = heads, placement, init, float(scaling)
        # skip_init: no throw-away random init, so the RNG stream matches separately built heads.
        self.down = skip_init(nn.Linear, d_src, r)
        self.act = make_activation(activation)
        self.up = skip_init(nn.Linear, r, d_out)
        self.reset_parameters()

    def head(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Views (weight (r/h, d_src), bias (r/h,)) of head ``i`` inside the fused Down."""
        size = self.down.out_features // self.heads
        rows = slice(i * size, (i + 1) * size)
        return self.down.weight[rows], self.down.bias[rows]

    @torch.no_grad()
    def reset_parameters(self) -> None:
        for i in range(self.heads):
            init_like_linear_(*self.head(i))
        init_up_(self.up, self.init)

    @torch.no_grad()
    def make_identity_(self) -> "Bottleneck":
        """Zero Up, so that dH == 0 exactly (Down keeps its weights and still gets gradients)."""
        init_up_(self.up, "zero")
        return self

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        src = h if self.placement == "sequential" else x
        out = self.up(self.act(self.down(src)))
        return out * self.scaling if self.scaling != 1.0 else out

    def extra_repr(self) -> str:
        return f"heads={self.heads}, placement={self.placement}, init={self.init}, scaling={self.scaling}"
