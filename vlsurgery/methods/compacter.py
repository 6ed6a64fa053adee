"""Compacter (Mahabadi et al., 2021): a bottleneck whose Down and Up are PHM layers.

A PHM layer is a Linear (d_in -> d_out, with bias) whose weight is a sum of n Kronecker products::

    W = sum_{i<n} A_i (x) B_i          A_i: (n, n),  B_i: (d_out/n, d_in/n),   y = W x + b
    B_i = s_i t_i^T                    when phm_rank = k > 0: s_i (d_out/n, k), t_i (d_in/n, k)

so n must divide d_in and d_out.  The "rule" A = (A_0..A_{n-1}), an (n, n, n) tensor, is either owned
by each PHM layer (``shared=false``: 2 n^3 parameters per site) or shared by every PHM layer of the
model, Down and Up alike (``shared=true``, the Compacter default): then it lives in a store owned by
the model, an ``nn.ParameterDict`` passed to ``build(..., shared_params=store)`` under the key
:func:`phm_rule_key` (``compacter_phm_rule_n{n}``).  The first build creates it there; later builds
register the same Parameter object, so ``model.parameters()`` yields it once (and ``state_dict``
lists it under every site, like tied embeddings).  Without a store a private one is used.

Parameters per PHM layer, rule excluded: ``n * (d_out/n) * (d_in/n) + d_out`` (full B_i) or
``k (d_in + d_out) + d_out`` (factorised); a Compacter site has Down (d_src -> r) and Up (r -> d_out).

Initialisation, as the Compacter defaults: A ~ N(0, 0.01^2); each B_i (or each s_i and t_i)
Glorot-uniform; biases 0.  ``init_down`` / ``init_up`` take ``default`` or ``zero``: zero makes the
layer's B_i (or only s_i, so that t_i still learns) 0, so ``init_up=zero`` starts dH at 0.
Identity (:meth:`PHMBottleneck.make_identity_`): Up's B_i (or s_i) and bias zeroed: dH == 0 exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vlsurgery.errors import UsageError
from vlsurgery.methods.activations import make_activation
from vlsurgery.methods.counts import phm_count, phm_rule_key  # noqa: F401 (re-exported)

#: Standard deviation of the PHM rule's initial values (Compacter's phm_init_range).
PHM_RULE_STD = 0.01


def new_phm_rule(n: int) -> nn.Parameter:
    rule = nn.Parameter(torch.empty(n, n, n))
    with torch.no_grad():
        nn.init.normal_(rule, std=PHM_RULE_STD)
    return rule


def shared_phm_rule(store: nn.ParameterDict, n: int) -> nn.Parameter:
    """The store's rule for n, created (and added to the store) on first use."""
    key = phm_rule_key(n)
    if key not in store:
        store[key] = new_phm_rule(n)
    rule = store[key]
    if tuple(rule.shape) != (n, n, n):
        raise UsageError(f"shared parameter {key!r} has shape {tuple(rule.shape)}, expected {(n, n, n)}")
    return rule


class PHMLinear(nn.Module):
    """y = (sum_i A_i (x) B_i) x + b, the rule A given (shared) or owned (``rule=None``)."""

    def __init__(self, d_in: int, d_out: int, n: int, *, phm_rank: int = 1, rule: nn.Parameter | None = None,
                 zero: bool = False):
        super().__init__()
        if d_in % n or d_out % n:
            raise UsageError(f"n={n} must divide the PHM layer's widths {d_in} and {d_out}")
        self.n, self.phm_rank, self.zero = n, phm_rank, zero
        self.A = rule if rule is not None else new_phm_rule(n)
        p, q = d_out // n, d_in // n
        if phm_rank == 0:
            self.B = nn.Parameter(torch.empty(n, p, q))
        else:
            self.s = nn.Parameter(torch.empty(n, p, phm_rank))
            self.t = nn.Parameter(torch.empty(n, q, phm_rank))
        self.bias = nn.Parameter(torch.zeros(d_out))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):
        """Glorot-uniform B_i (or s_i then t_i), per i; the rule is left alone (it may be shared)."""
        for factor in ([self.B] if self.phm_rank == 0 else [self.s, self.t]):
            for i in range(self.n):
                nn.init.xavier_uniform_(factor[i])
        if self.zero:
            self._zero_out()
        self.bias.zero_()

    def _zero_out(self):
        (self.B if self.phm_rank == 0 else self.s).zero_()

    @torch.no_grad()
    def make_identity_(self) -> "PHMLinear":
        """W = 0 and b = 0: the layer outputs exactly 0."""
        self._zero_out()
        self.bias.zero_()
        return self

    def blocks(self) -> torch.Tensor:
        """The B_i as one (n, d_out/n, d_in/n) tensor."""
        return self.B if self.phm_rank == 0 else self.s @ self.t.transpose(1, 2)

    def weight(self) -> torch.Tensor:
        """W = sum_i kron(A_i, B_i), shape (d_out, d_in)."""
        b = self.blocks()
        n, p, q = b.shape
        # kron(A_i, B_i)[a*p + c, b*q + d] = A_i[a, b] * B_i[c, d]
        return torch.einsum("iab,icd->acbd", self.A.to(b.dtype), b).reshape(n * p, n * q)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight(), self.bias)

    def extra_repr(self) -> str:
        return f"n={self.n}, phm_rank={self.phm_rank}"


class PHMBottleneck(nn.Module):
    """Compacter's dH = Up(act(Down(src))) with PHM Down (d_src -> r) and Up (r -> d_out).

    ``rule``: the shared (n, n, n) Parameter, or None for a rule owned by each of Down and Up.
    Call: ``compacter(x, h) -> dH``; src = h (sequential) or x (parallel).
    """

    def __init__(self, d_src: int, r: int, d_out: int, *, n: int = 4, phm_rank: int = 1,
                 rule: nn.Parameter | None = None, activation: str = "gelu_new", placement: str = "sequential",
                 init_down: str = "default", init_up: str = "default"):
        super().__init__()
        if placement not in ("sequential", "parallel"):
            raise UsageError(f"placement must be sequential or parallel, not {placement!r}")
        for key, value in (("init_down", init_down), ("init_up", init_up)):
            if value not in ("default", "zero"):
                raise UsageError(f"{key}={value}: a PHM layer takes default or zero")
        self.placement = placement
        self.down = PHMLinear(d_src, r, n, phm_rank=phm_rank, rule=rule, zero=(init_down == "zero"))
        self.act = make_activation(activation)
        self.up = PHMLinear(r, d_out, n, phm_rank=phm_rank, rule=rule, zero=(init_up == "zero"))

    @torch.no_grad()
    def make_identity_(self) -> "PHMBottleneck":
        self.up.make_identity_()
        return self

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        src = h if self.placement == "sequential" else x
        return self.up(self.act(self.down(src)))

    def extra_repr(self) -> str:
        return f"placement={self.placement}"
