"""How a part of an added module starts: the initialisers of the ``init_<part>`` keys.

Every hyperparameter of kind ``init`` (``init_up``, ``init_gate``, ``init_A``, ...) names one
part of a module and one initialiser (docs/language.md, "Initialisation"):

===============  ==============================================================================
``default``      the part's own initialisation: PyTorch's for an ``nn.Linear`` (kaiming-uniform
                 weight, bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))) or ``nn.Embedding`` (N(0, 1)),
                 the method's documented one otherwise (the vector gate's z ~ N(0, 0.02^2), ...)
``zero``         every value 0
``backbone``     the backbone's own initialiser (:class:`BackboneInit`): weight ~ N(0, std^2)
``normal(s)``    weight ~ N(0, s^2)
``uniform(a)``   weight ~ U(-a, a)
===============  ==============================================================================

Except for ``default``, a bias starts at 0.

>>> BackboneInit(std=0.02).std_for(768)
0.02
>>> BackboneInit(factor=1.0).std_for(64)
0.125
>>> parse_init("normal(0.02)")
('normal', 0.02)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from vlsurgery.errors import UsageError
from vlsurgery.methods.params import CALL


@dataclass(frozen=True)
class BackboneInit:
    """The backbone's initialiser of a weight: N(0, std^2) with a fixed ``std`` (BART:
    ``config.init_std``; most Hugging Face models: ``config.initializer_range``) or, T5's rule,
    ``std = factor / sqrt(fan_in)`` (``config.initializer_factor``; an embedding: ``factor``)."""

    std: float | None = None
    factor: float | None = None

    def std_for(self, fan_in: int | None) -> float:
        """The standard deviation of a weight that reads ``fan_in`` inputs (None: an embedding)."""
        if self.std is not None:
            return float(self.std)
        return float(self.factor) if fan_in is None else float(self.factor) / math.sqrt(fan_in)

    def describe(self) -> str:
        return f"N(0, {self.std}^2)" if self.std is not None else f"N(0, ({self.factor}/sqrt(fan_in))^2)"


def backbone_init(config) -> BackboneInit | None:
    """The initialiser a Hugging Face config describes, or None when it names none.

    ``init_std`` (BART) and ``initializer_range`` (BERT-like) are fixed standard deviations;
    ``initializer_factor`` is T5's factor of 1/sqrt(fan_in).
    """
    for name in ("init_std", "initializer_range"):
        value = getattr(config, name, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return BackboneInit(std=float(value))
    factor = getattr(config, "initializer_factor", None)
    if isinstance(factor, (int, float)) and not isinstance(factor, bool) and factor > 0:
        return BackboneInit(factor=float(factor))
    return None


def parse_init(text: str) -> tuple[str, float | None]:
    """``"zero"`` -> ``("zero", None)``; ``"normal(0.02)"`` -> ``("normal", 0.02)`` (canonical text)."""
    call = CALL.fullmatch(text)
    return (call.group(1), float(call.group(2))) if call else (text, None)


@torch.no_grad()
def init_like_linear_(weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    """Initialise (views of) a weight (out, in) and bias (out,) exactly as ``nn.Linear`` does."""
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in = weight.shape[1]
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        nn.init.uniform_(bias, -bound, bound)


def init_tensor_(weight, bias, init: str, default: Callable[[], None], *, backbone: BackboneInit | None = None,
                 embedding: bool = False, what: str = "this part") -> None:
    """Initialise ``weight`` (and ``bias``, may be None) in place as ``init`` says.

    ``default`` runs the part's own initialisation.  The backbone's fan-in rule reads the
    weight's last dimension; an ``embedding`` table, or a vector, reads none.
    """
    name, number = parse_init(init)
    if name == "default":
        default()
        return
    with torch.no_grad():
        if name == "zero":
            weight.zero_()
        elif name == "normal":
            nn.init.normal_(weight, mean=0.0, std=number)
        elif name == "uniform":
            nn.init.uniform_(weight, -number, number)
        elif name == "backbone":
            if backbone is None:
                raise UsageError(f"{what}=backbone needs the backbone's initialiser: compile the spec onto a model "
                                 "(its config gives init_std, initializer_range or initializer_factor), or pass "
                                 "build(hp, dims, backbone_init=BackboneInit(std=...)); or write normal(std)")
            fan_in = weight.shape[-1] if weight.dim() > 1 and not embedding else None
            nn.init.normal_(weight, mean=0.0, std=backbone.std_for(fan_in))
        else:
            raise UsageError(f"{what}: {init!r} is not an initialiser; expected default, zero, backbone, "
                             "normal(std) or uniform(a)")
        if bias is not None:
            bias.zero_()


def init_linear_(linear, init: str, *, backbone: BackboneInit | None = None, what: str = "this part") -> None:
    """An ``nn.Linear`` as ``init`` says (``default``: exactly as ``nn.Linear`` initialises itself)."""
    init_tensor_(linear.weight, linear.bias, init, lambda: init_like_linear_(linear.weight, linear.bias),
                 backbone=backbone, what=what)
