"""LoRA: a low-rank update of a frozen Linear (Hu et al., 2021), as a modification dH.

Maths, for a projection h = W x + b (W: (d_out, d_in))::

    dH = (alpha / r) * B A dropout(x)        A: (r, d_in), B: (d_out, r)       r (d_in + d_out) parameters

Initialisation (``init_A``, ``init_B``: the initialisers of :mod:`vlsurgery.methods.initializers`;
the backbone's fan-in rule reads d_in for A, r for B): ``default`` A is ``nn.Linear(d_in, r).weight``
(kaiming-uniform, a=sqrt(5)), ``default`` B is 0, so dH starts at exactly 0.  The older
``init=gaussian`` is ``init_A=normal(1/r)``.
Identity (:meth:`LoRA.make_identity_`): B = 0.

Merging: :func:`merge_lora` adds (alpha/r) B A to the base Linear's weight in place and marks the
update merged, so the site module stops adding it (h already contains it); :func:`unmerge_lora`
subtracts it again.  The base may be transformers' Conv1D (GPT-2, weight stored transposed) and
the update may own only some output ``columns`` of it (GPT-2's q in the fused c_attn: the rows
[start, stop) of W, in nn.Linear's layout).  The update is computed in float32 and rounded once into the base weight's
dtype, so in bfloat16/float16 an unmerge restores the weight only up to that rounding.  Merging is
only possible when the site has no gate and scale == 1 (otherwise h_new is not a Linear of x).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vlsurgery.errors import UsageError
from vlsurgery.methods.initializers import BackboneInit, init_tensor_
from vlsurgery.methods.projections import is_projection, linear_weight, projection_dims


class LoRA(nn.Module):
    """dH = (alpha / r) * B A dropout(x); reads X whatever the placement."""

    def __init__(self, d_in: int, d_out: int, r: int, *, alpha: float = 8.0, dropout: float = 0.0,
                 init_A: str = "default", init_B: str = "default", backbone: BackboneInit | None = None):
        super().__init__()
        self.r, self.alpha = r, float(alpha)
        self.init_A, self.init_B, self.backbone = init_A, init_B, backbone
        self.scaling = self.alpha / r
        self.A = nn.Parameter(torch.empty(r, d_in))
        self.B = nn.Parameter(torch.empty(d_out, r))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):
        init_tensor_(self.A, None, self.init_A, lambda: nn.init.kaiming_uniform_(self.A, a=math.sqrt(5)),
                     backbone=self.backbone, what="init_A")
        init_tensor_(self.B, None, self.init_B, self.B.zero_, backbone=self.backbone, what="init_B")

    @torch.no_grad()
    def make_identity_(self) -> "LoRA":
        if self.merged:
            raise UsageError("unmerge the LoRA update before making it an identity")
        self.B.zero_()
        return self

    def delta_weight(self) -> torch.Tensor:
        """The update (alpha/r) B A as a (d_out, d_in) matrix, in float32."""
        return (self.B.float() @ self.A.float()) * self.scaling

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return (self.dropout(x) @ self.A.t() @ self.B.t()) * self.scaling

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, init_A={self.init_A}, init_B={self.init_B}, merged={self.merged}"


def _lora_of(module: nn.Module) -> LoRA:
    """The LoRA inside a site module (or the LoRA itself), refusing gated or scaled sites."""
    if isinstance(module, LoRA):
        return module
    delta = getattr(module, "delta", None)
    if not isinstance(delta, LoRA):
        raise UsageError(f"{type(module).__name__} holds no LoRA update to merge")
    if getattr(module, "gate", None) is not None or getattr(module, "scale", 1.0) != 1.0:
        raise UsageError("a LoRA site with a gate or scale != 1 is not a Linear of x: it cannot be merged")
    return delta


def _target(lora: LoRA, base: nn.Module, columns: tuple[int, int] | None) -> torch.Tensor:
    """The rows of the base weight (nn.Linear's layout, a view into the parameter) the update folds into."""
    d_in, d_out = projection_dims(base) if is_projection(base) else (None, None)
    start, stop = columns if columns is not None else (0, d_out or 0)
    if d_out is None or not 0 <= start < stop <= d_out or (stop - start, d_in) != (lora.B.shape[0], lora.A.shape[1]):
        where = "" if columns is None else f" (output columns [{start}:{stop}])"
        raise UsageError(f"the base must be an nn.Linear or Conv1D with {lora.A.shape[1]} inputs and "
                         f"{lora.B.shape[0]} outputs{where}, got {base!r}")
    return linear_weight(base)[start:stop]


@torch.no_grad()
def merge_lora(module: nn.Module, base: nn.Module, columns: tuple[int, int] | None = None) -> None:
    """W <- W + (alpha/r) B A in place (on W's rows ``columns`` when given), and mark the update
    merged (the site module then adds nothing)."""
    lora = _lora_of(module)
    rows = _target(lora, base, columns)
    if lora.merged:
        raise UsageError("this LoRA update is already merged")
    rows.copy_((rows.float() + lora.delta_weight().to(rows.device)).to(rows.dtype))
    lora.merged = True


@torch.no_grad()
def unmerge_lora(module: nn.Module, base: nn.Module, columns: tuple[int, int] | None = None) -> None:
    """W <- W - (alpha/r) B A in place, and mark the update unmerged again."""
    lora = _lora_of(module)
    rows = _target(lora, base, columns)
    if not lora.merged:
        raise UsageError("this LoRA update is not merged")
    rows.copy_((rows.float() - lora.delta_weight().to(rows.device)).to(rows.dtype))
    lora.merged = False
