"""The site module the compiler inserts: VL-PET's H' = s * G (.) (H + dH).

``VLPET(delta, gate, scale)`` combines any modification dH (a :class:`~.bottleneck.Bottleneck`
adapter, a :class:`~.compacter.PHMBottleneck`, a :class:`~.lora.LoRA` update, or nothing) with any
gate of :mod:`.gates` (or none), as in Table 9 of the VL-PET paper.  Called as
``module(x, h, mask=None) -> h_new``::

    H' = H + dH(X, H)                  (H when there is no modification, or a merged LoRA)
    G  = gate(X, H', mask)             (1 when there is no gate; the gate sees H' = H + dH)
    h_new = s * G (.) H'

Building order (the RNG stream under ``torch.manual_seed``): the modification, then the gate.
Identity (:meth:`VLPET.make_identity_`): the modification's identity (dH = 0) and the gate's
(G = 1); raises :class:`UsageError` when ``scale != 1`` (no parameter setting undoes s exactly).
"""

from __future__ import annotations

import torch
from torch import nn

from vlsurgery.errors import UsageError


class VLPET(nn.Module):
    """h_new = scale * G(X, H + dH) (.) (H + dH); ``delta`` and ``gate`` are optional submodules."""

    def __init__(self, delta: nn.Module | None = None, gate: nn.Module | None = None, scale: float = 1.0):
        super().__init__()
        self.delta = delta
        self.gate = gate
        self.scale = float(scale)

    @torch.no_grad()
    def make_identity_(self) -> "VLPET":
        if self.scale != 1.0:
            raise UsageError(f"scale={self.scale} multiplies H: this module cannot start as an identity "
                             "(use scale=1 to check a compiled model against the original)")
        if self.delta is not None:
            self.delta.make_identity_()
        if self.gate is not None:
            self.gate.make_identity_()
        return self

    def forward(self, x: torch.Tensor, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        # A merged LoRA already lives in the base weight that produced h.
        if self.delta is not None and not getattr(self.delta, "merged", False):
            h = h + self.delta(x, h)
        if self.gate is not None:
            h = self.gate(x, h, mask) * h
        if self.scale != 1.0:
            h = h * self.scale
        return h

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class NoOp(nn.Module):
    """``none``: h_new = h, no parameters (what removing a site means)."""

    def make_identity_(self) -> "NoOp":
        return self

    def forward(self, x: torch.Tensor, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return h
