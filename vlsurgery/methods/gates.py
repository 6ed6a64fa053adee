"""VL-PET's granularity-controlled gate G, at the five granularities of docs/paper.md §2.

Every gate is called as ``gate(x, h_prime, mask=None) -> G`` with x: (B, N, d_in) the site's input X
and h_prime: (B, N, d_out) = H + dH; G broadcasts against (B, N, d_out):

=========  ==========  =============================================  ==========================
name       paper       G                                              parameters
=========  ==========  =============================================  ==========================
none       (no gate)   1 (no module is built)                          0
scalar     G_small     mean_n sigmoid(w . [x_n ; h'_n] + b)  (B,1,1)   d_in + d_out + 1
token      G_middleX   sigmoid(w . (x_n + h'_n) + b)         (B,N,1)   d + 1  (d_in == d_out == d)
vector     G_middleY   1 + z                                 (d_out,)  d_out
matrix     G_large     sigmoid(Up(gelu_new(Down(x))))        (B,N,d)   d_in*g + g + g*d_out + d_out
=========  ==========  =============================================  ==========================

The scalar gate's Linear reads the concatenation [X ; H'] (its first d_in input columns multiply X,
the last d_out multiply H'); with d_in == d_out it is the paper's Linear_{2d->1}.  Its mean runs over
the real tokens when a (B, N) ``mask`` (1/True = real token) is given; without a mask it runs over
all N positions, padding included, as the reference implementation does.  An example with no real
token at all gets G = 0 (its outputs are all padding).  The mean is computed in float32.

Initialisation: Linears as ``nn.Linear`` (matrix gate: Down, then Up; Up zero with
``gate_init="zero"``, so G starts at exactly 0.5); vector gate z ~ N(0, 0.02^2).
Identity (:meth:`make_identity_`): sigmoid gates get a zero weight and a bias of
:data:`SATURATED_LOGIT` (sigmoid rounds to exactly 1.0 in float16/bfloat16/float32/float64); the
vector gate gets z = 0.
"""

from __future__ import annotations

import torch
from torch import nn

from vlsurgery.errors import UsageError
from vlsurgery.methods.activations import make_activation
from vlsurgery.methods.bottleneck import init_like_linear_, init_up_
from vlsurgery.methods.counts import gate_count  # noqa: F401 (re-exported)

#: A logit whose sigmoid is exactly 1.0 in every floating dtype torch has (exp(-100) < 2**-53 / 2).
SATURATED_LOGIT = 100.0
#: Standard deviation of the vector gate's initial noise z (reference: 0.02).
VECTOR_INIT_STD = 0.02


class _SigmoidGate(nn.Module):
    """Shared identity logic: the last Linear decides the logit."""

    def _logit_layer(self) -> nn.Linear:
        raise NotImplementedError

    @torch.no_grad()
    def make_identity_(self):
        layer = self._logit_layer()
        layer.weight.zero_()
        layer.bias.fill_(SATURATED_LOGIT)
        return self


class ScalarGate(_SigmoidGate):
    """G_small: one value per example, the (masked) token mean of sigmoid(Linear([X ; H']))."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.proj = nn.Linear(d_in + d_out, 1)

    def _logit_layer(self):
        return self.proj

    def forward(self, x, h, mask=None):
        g = torch.sigmoid(self.proj(torch.cat([x, h], dim=-1))).float()  # (B, N, 1)
        if mask is None:
            mean = g.mean(dim=1, keepdim=True)
        else:
            m = mask.to(torch.float32).unsqueeze(-1)
            mean = (g * m).sum(dim=1, keepdim=True) / m.sum(dim=1, keepdim=True).clamp_min(1.0)
        return mean.to(h.dtype)  # (B, 1, 1)


class TokenGate(_SigmoidGate):
    """G_middleX: one value per token, sigmoid(Linear_{d->1}(X + H')); needs d_in == d_out."""

    def __init__(self, d: int):
        super().__init__()
        self.proj = nn.Linear(d, 1)

    def _logit_layer(self):
        return self.proj

    def forward(self, x, h, mask=None):
        return torch.sigmoid(self.proj(x + h))  # (B, N, 1)


class VectorGate(nn.Module):
    """G_middleY: one value per channel, 1 + z, the same for every token and example."""

    def __init__(self, d_out: int):
        super().__init__()
        self.z = nn.Parameter(torch.empty(d_out))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):
        nn.init.normal_(self.z, mean=0.0, std=VECTOR_INIT_STD)

    @torch.no_grad()
    def make_identity_(self):
        self.z.zero_()
        return self

    def forward(self, x, h, mask=None):
        return 1 + self.z  # (d_out,)


class MatrixGate(_SigmoidGate):
    """G_large: one value per token and channel, sigmoid(Up(gelu_new(Down(X)))), rank ``gate_r``."""

    def __init__(self, d_in: int, d_out: int, gate_r: int, *, init: str = "default"):
        super().__init__()
        if init not in ("default", "zero"):
            raise UsageError(f"gate_init must be default or zero, not {init!r}")
        self.init = init
        self.down = nn.Linear(d_in, gate_r)
        self.act = make_activation("gelu_new")
        self.up = nn.Linear(gate_r, d_out)
        if init == "zero":
            with torch.no_grad():
                self.up.weight.zero_()
                self.up.bias.zero_()

    def _logit_layer(self):
        return self.up

    @torch.no_grad()
    def reset_parameters(self):
        init_like_linear_(self.down.weight, self.down.bias)
        init_up_(self.up, self.init)

    def forward(self, x, h, mask=None):
        return torch.sigmoid(self.up(self.act(self.down(x))))  # (B, N, d_out)


def make_gate(granularity: str, d_in: int, d_out: int, gate_r: int | None = None,
              gate_init: str = "default") -> nn.Module | None:
    """The gate module for a granularity, or None for ``none`` (G = 1)."""
    if granularity == "none":
        return None
    if granularity == "scalar":
        return ScalarGate(d_in, d_out)
    if granularity == "token":
        if d_in != d_out:
            raise UsageError(f"the token gate adds X and H': needs d_in == d_out, got {d_in} and {d_out}")
        return TokenGate(d_in)
    if granularity == "vector":
        return VectorGate(d_out)
    if granularity == "matrix":
        if gate_r is None:
            raise UsageError("the matrix gate needs gate_r")
        return MatrixGate(d_in, d_out, gate_r, init=gate_init)
    raise UsageError(f"unknown granularity {granularity!r}")
