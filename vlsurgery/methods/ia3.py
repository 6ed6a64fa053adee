"""(IA)^3: h_new = l (.) h, a learned vector l over the output channels (Liu et al., 2022).

``IA3(d_out, init=1.0)(x, h, mask=None) -> l * h``; l has d_out parameters, initialised to ``init``.
Identity (:meth:`IA3.make_identity_`): l = 1.
"""

from __future__ import annotations

import torch
from torch import nn


class IA3(nn.Module):
    """h_new = l (.) h with l in R^{d_out}."""

    def __init__(self, d_out: int, init: float = 1.0):
        super().__init__()
        self.init = float(init)
        self.scale = nn.Parameter(torch.full((d_out,), self.init))

    @torch.no_grad()
    def reset_parameters(self):
        self.scale.fill_(self.init)

    @torch.no_grad()
    def make_identity_(self) -> "IA3":
        self.scale.fill_(1.0)
        return self

    def forward(self, x: torch.Tensor, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return h * self.scale
