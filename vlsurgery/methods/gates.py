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
the last d_out multiply H'); with d_in == d_out it is the paper's Linear_{2d->1}.  Its mean
(``pool``, the spec's ``gate_pool``; docs/paper.md §7), with g_n = sigmoid(w . [x_n ; h'_n] + b)::

    pool="tokens":  G = sum_n m_n g_n / sum_n m_n     m the (B, N) mask, 1 = real token
    pool="all":     G = (1/N) sum_n g_n               every position, padding included (the reference)

With ``tokens``, an example with no real token at all gets G = 0 (its outputs are all padding),
and a missing mask (None: no padding known) means every position.  ``all`` ignores the mask.  The
mean is computed in float32.

Initialisation (``init``: the part that sets G's start; ``init_down``: the matrix gate's Down; the
initialisers of :mod:`vlsurgery.methods.initializers`): every Linear is first built as
``nn.Linear`` (matrix gate: Down, then Up), then re-initialised when its initialiser is not
``default`` (so a zero Up leaves the random stream as the reference's zeroing after building
does); the vector gate's ``default`` z is N(0, 0.02^2).  ``init="zero"`` starts G at exactly 0.5
(sigmoid gates) or 1 (vector gate).
Identity (:meth:`make_identity_`): sigmoid gates get a zero weight and a bias of
:data:`SATURATED_LOGIT` (sigmoid rounds to exactly 1.0 in float16/bfloat16/float32/float64); the
vector gate gets z = 0.
"""

from __future__ import annotations

import torch
from torch import nn

from vlsurgery.errors import UsageError
from vlsurgery.methods.activations import make_activation
from vlsurgery.methods.counts import gate_count  # noqa: F401 (re-exported)
from vlsurgery.methods.initializers import BackboneInit, init_linear_, init_tensor_
from vlsurgery.methods.params import GATE_POOLS

#: A logit whose sigmoid is exactly 1.0 in every floating dtype torch has (exp(-100) < 2**-53 / 2).
SATURATED_LOGIT = 100.0
#: Standard deviation of the vector gate's initial noise z (reference: 0.02).
VECTOR_INIT_STD = 0.02


class _SigmoidGate(nn.Module):
    """Shared identity and initialisation logic: the last Linear decides the logit."""

    def _logit_layer(self) -> nn.Linear:
        raise NotImplementedError

    def _initialise(self, init: str, backbone: BackboneInit | None) -> None:
        self.init, self.backbone = init, backbone
        if init != "default":  # default: nn.Linear already initialised itself when it was built
            init_linear_(self._logit_layer(), init, backbone=backbone, what="init_gate")

    @torch.no_grad()
    def reset_parameters(self):
        init_linear_(self._logit_layer(), self.init, backbone=self.backbone, what="init_gate")

    @torch.no_grad()
    def make_identity_(self):
        layer = self._logit_layer()
        layer.weight.zero_()
        layer.bias.fill_(SATURATED_LOGIT)
        return self


class ScalarGate(_SigmoidGate):
    """G_small: one value per example, the mean of sigmoid(Linear([X ; H'])) over the real tokens
    (``pool="tokens"``) or over every position (``pool="all"``)."""

    def __init__(self, d_in: int, d_out: int, *, pool: str = "tokens", init: str = "default",
                 backbone: BackboneInit | None = None):
        super().__init__()
        if pool not in GATE_POOLS:
            raise UsageError(f"gate_pool must be one of {', '.join(GATE_POOLS)}, not {pool!r}")
        self.pool = pool
        self.proj = nn.Linear(d_in + d_out, 1)
        self._initialise(init, backbone)

    def _logit_layer(self):
        return self.proj

    def forward(self, x, h, mask=None):
        g = torch.sigmoid(self.proj(torch.cat([x, h], dim=-1))).float()  # (B, N, 1)
        if mask is None or self.pool == "all":
            mean = g.mean(dim=1, keepdim=True)
        else:
            m = mask.to(torch.float32).unsqueeze(-1)
            mean = (g * m).sum(dim=1, keepdim=True) / m.sum(dim=1, keepdim=True).clamp_min(1.0)
        return mean.to(h.dtype)  # (B, 1, 1)

    def extra_repr(self) -> str:
        return f"pool={self.pool}, init={self.init}"


class TokenGate(_SigmoidGate):
    """G_middleX: one value per token, sigmoid(Linear_{d->1}(X + H')); needs d_in == d_out."""

    def __init__(self, d: int, *, init: str = "default", backbone: BackboneInit | None = None):
        super().__init__()
        self.proj = nn.Linear(d, 1)
        self._initialise(init, backbone)

    def _logit_layer(self):
        return self.proj

    def forward(self, x, h, mask=None):
        return torch.sigmoid(self.proj(x + h))  # (B, N, 1)


class VectorGate(nn.Module):
    """G_middleY: one value per channel, 1 + z, the same for every token and example."""

    def __init__(self, d_out: int, *, init: str = "default", backbone: BackboneInit | None = None):
        super().__init__()
        self.init, self.backbone = init, backbone
        self.z = nn.Parameter(torch.empty(d_out))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):
        init_tensor_(self.z, None, self.init, lambda: nn.init.normal_(self.z, mean=0.0, std=VECTOR_INIT_STD),
                     backbone=self.backbone, what="init_gate")

    @torch.no_grad()
    def make_identity_(self):
        self.z.zero_()
        return self

    def forward(self, x, h, mask=None):
        return 1 + self.z  # (d_out,)


class MatrixGate(_SigmoidGate):
    """G_large: one value per token and channel, sigmoid(Up(gelu_new(Down(X)))), rank ``gate_r``."""

    def __init__(self, d_in: int, d_out: int, gate_r: int, *, init: str = "default", init_down: str = "default",
                 backbone: BackboneInit | None = None):
        super().__init__()
        self.init_down = init_down
        self.down = nn.Linear(d_in, gate_r)
        self.act = make_activation("gelu_new")
        self.up = nn.Linear(gate_r, d_out)
        if init_down != "default":
            init_linear_(self.down, init_down, backbone=backbone, what="init_gate_down")
        self._initialise(init, backbone)

    def _logit_layer(self):
        return self.up

    @torch.no_grad()
    def reset_parameters(self):
        init_linear_(self.down, self.init_down, backbone=self.backbone, what="init_gate_down")
        init_linear_(self.up, self.init, backbone=self.backbone, what="init_gate")

    def forward(self, x, h, mask=None):
        return torch.sigmoid(self.up(self.act(self.down(x))))  # (B, N, d_out)


def make_gate(granularity: str, d_in: int, d_out: int, gate_r: int | None = None, *, pool: str = "tokens",
              init: str = "default", init_down: str = "default", backbone: BackboneInit | None = None,
              ) -> nn.Module | None:
    """The gate module for a granularity, or None for ``none`` (G = 1)."""
    if granularity == "none":
        return None
    if granularity == "scalar":
        return ScalarGate(d_in, d_out, pool=pool, init=init, backbone=backbone)
    if granularity == "token":
        if d_in != d_out:
            raise UsageError(f"the token gate adds X and H': needs d_in == d_out, got {d_in} and {d_out}")
        return TokenGate(d_in, init=init, backbone=backbone)
    if granularity == "vector":
        return VectorGate(d_out, init=init, backbone=backbone)
    if granularity == "matrix":
        if gate_r is None:
            raise UsageError("the matrix gate needs gate_r")
        return MatrixGate(d_in, d_out, gate_r, init=init, init_down=init_down, backbone=backbone)
    raise UsageError(f"unknown granularity {granularity!r}")
