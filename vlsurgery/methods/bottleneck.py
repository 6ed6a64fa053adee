"""The bottleneck modification dH of adapters and VL-PET, with VL-PET's multi-head down-projection.

Maths (``src`` = H for ``sequential`` placement, X for ``parallel``)::

    dH = scaling * Up(act(Down(src)))          Down: d_src -> r,  Up: r -> d_out,  both with bias
    Down(src) = concat_i (W_i src + b_i)       h heads W_i: (r/h, d_src), b_i: (r/h,)

The h heads are exactly the row blocks of one (r, d_src) matrix, so they run as ONE fused matrix
multiply: ``down.weight[i*r/h:(i+1)*r/h]`` is head i's weight and ``down.bias[i*r/h:(i+1)*r/h]``
its bias (:meth:`Bottleneck.head` returns these views).  Initialisation (``init_down``, ``init_up``:
the initialisers of :mod:`vlsurgery.methods.initializers`): with ``default``, Down is initialised
per head, in head order, exactly as ``h`` separate ``nn.Linear(d_src, r/h)`` would be built one
after the other (weight then bias, kaiming-uniform with a=sqrt(5), bias U(-1/sqrt(d_src),
1/sqrt(d_src))), followed by ``Up`` as ``nn.Linear(r, d_out)``.  So ``torch.manual_seed(s)`` before
building gives the same weights as the reference's separate heads built after the same seed.  Any
other initialiser draws the whole fused matrix at once (the same distribution for every head).

Parameters: ``d_src*r + r + r*d_out + d_out`` whatever h is.
Identity: :meth:`make_identity_` zeroes Up (weight and bias), so dH == 0 exactly.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import skip_init

from vlsurgery.errors import UsageError
from vlsurgery.methods.activations import make_activation
from vlsurgery.methods.counts import bottleneck_count  # noqa: F401 (re-exported)
from vlsurgery.methods.initializers import BackboneInit, init_like_linear_, init_linear_, init_tensor_


class Bottleneck(nn.Module):
    """dH = scaling * Up(act(Down(src))), Down split into ``heads`` heads fused in one Linear.

    Args:
        d_src: width of what Down reads (d_out of H for sequential, d_in of X for parallel).
        r: bottleneck width; ``heads`` must divide it.
        d_out: width of H (and of dH).
        heads: number of down-projection heads (each d_src -> r/heads).
        activation: a name from :data:`params.ACTIVATIONS` (default ``gelu_new``).
        placement: ``sequential`` (reads H) or ``parallel`` (reads X).
        init_down, init_up: initialisers of Down and Up (``init_up="zero"``: dH starts at 0).
        backbone: the backbone's initialiser, for ``backbone``.
        scaling: constant factor on dH (1.0: none).

    Call: ``bottleneck(x, h) -> dH`` of shape (..., d_out).
    """

    def __init__(self, d_src: int, r: int, d_out: int, *, heads: int = 1, activation: str = "gelu_new",
                 placement: str = "sequential", init_down: str = "default", init_up: str = "default",
                 backbone: BackboneInit | None = None, scaling: float = 1.0):
        super().__init__()
        if r % heads:
            raise UsageError(f"heads={heads} must divide r={r}")
        if placement not in ("sequential", "parallel"):
            raise UsageError(f"placement must be sequential or parallel, not {placement!r}")
        self.heads, self.placement, self.scaling = heads, placement, float(scaling)
        self.init_down, self.init_up, self.backbone = init_down, init_up, backbone
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
        def per_head():
            for i in range(self.heads):
                init_like_linear_(*self.head(i))

        init_tensor_(self.down.weight, self.down.bias, self.init_down, per_head, backbone=self.backbone,
                     what="init_down")
        init_linear_(self.up, self.init_up, backbone=self.backbone, what="init_up")

    @torch.no_grad()
    def make_identity_(self) -> "Bottleneck":
        """Zero Up, so that dH == 0 exactly (Down keeps its weights and still gets gradients)."""
        init_linear_(self.up, "zero")
        return self

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        src = h if self.placement == "sequential" else x
        out = self.up(self.act(self.down(src)))
        return out * self.scaling if self.scaling != 1.0 else out

    def extra_repr(self) -> str:
        return (f"heads={self.heads}, placement={self.placement}, init_down={self.init_down}, "
                f"init_up={self.init_up}, scaling={self.scaling}")
