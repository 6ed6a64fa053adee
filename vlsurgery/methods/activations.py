"""Activations selectable by name (``activation=`` in the DSL), as modules.

``gelu_new`` is the tanh approximation of GELU used by the VL-PET and VL-Adapter reference code:
``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``; ``gelu`` is the exact, erf-based GELU.
"""

from __future__ import annotations

from torch import nn

from vlsurgery.methods.params import ACTIVATIONS

_FACTORIES = {
    "gelu_new": lambda: nn.GELU(approximate="tanh"),
    "gelu": lambda: nn.GELU(approximate="none"),
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
}
assert set(_FACTORIES) == set(ACTIVATIONS), "activations.py and params.ACTIVATIONS disagree"


def make_activation(name: str) -> nn.Module:
    """A fresh activation module for a name in :data:`params.ACTIVATIONS`."""
    from vlsurgery.errors import UsageError, did_you_mean

    try:
        return _FACTORIES[name]()
    except KeyError:
        hint = did_you_mean(name, _FACTORIES)
        raise UsageError(f"unknown activation {name!r}; expected one of {', '.join(ACTIVATIONS)}"
                         + (f"; {hint}" if hint else "")) from None
