"""What a backbone family looks like to vlsurgery: roles -> module paths and dataflow points.

A :class:`Profile` is plain data computed from one config.  It says, for each stack (``encoder``,
``decoder``): where its layers live (``model.encoder.layers.<i>``), which sublayers a layer has and,
for each sublayer, the two dataflow points X and H (notation: ``"<module>:in"`` / ``"<module>:out"``,
relative to the layer), its layer norm and its projections (``q`` -> ``self_attn.q_proj``).  It also
lists every parameter of the base model with its shape, which is how vlsurgery counts parameters
and resolves ``train`` targets without building a model.

A family (``vlsurgery/profiles/bart.py``, ``t5.py``) is one :class:`Family` object: the model types it
covers, a function config -> Profile, and the model class to build for tests.  Adding a family is
writing one such module and listing it in ``vlsurgery.profiles.families``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Callable

#: Sublayer roles in the order they run inside a layer.
SUBLAYERS = ("self_attn", "cross_attn", "ffn")
#: Projection roles of each sublayer kind.
ATTENTION_PROJECTIONS = ("q", "k", "v", "o")
FFN_PROJECTIONS = ("in", "out")


@dataclass(frozen=True)
class Sublayer:
    """One sublayer of a layer, all paths relative to the layer module.

    ``x_point``/``h_point``: X (the sublayer's input on the residual stream) and H (its output before
    the residual add).  ``projections``: (role, linear paths) pairs; a role may map to several
    linears (``in`` -> ``wi_0``, ``wi_1`` in gated T5).  ``norm``: the layer norm that belongs to the
    sublayer.  ``owns``: module paths whose parameters belong to the sublayer (for ``.bias`` targets).
    """

    name: str
    x_point: str
    h_point: str
    norm: str
    projections: tuple[tuple[str, tuple[str, ...]], ...]
    owns: tuple[str, ...]

    def linears(self, role: str) -> tuple[str, ...]:
        return dict(self.projections).get(role, ())

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(role for role, _ in self.projections)


@dataclass(frozen=True)
class Stack:
    """A stack of identical layers: where it lives and what its layers contain."""

    name: str                      # "encoder" | "decoder"
    root: str                      # module path of the stack, e.g. "model.encoder"
    layers_path: str               # e.g. "model.encoder.layers"
    n_layers: int
    d_ff: int
    sublayers: tuple[Sublayer, ...]
    norms: tuple[str, ...] = ()    # stack-level norms (absolute paths): embedding norm, final norm

    def layer_module(self, index: int) -> str:
        return f"{self.layers_path}.{index}"

    def sublayer(self, name: str) -> Sublayer | None:
        return next((s for s in self.sublayers if s.name == name), None)

    @property
    def sublayer_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.sublayers)


@dataclass(frozen=True)
class Norm:
    """The kind of layer norm a family uses (the visual projector copies it)."""

    kind: str      # "layernorm" (nn.LayerNorm) or "rmsnorm" (T5LayerNorm: scale only, no mean)
    bias: bool
    eps: float

    @property
    def numel_per_width(self) -> int:
        """Parameters of one norm per unit of width: weight (+ bias)."""
        return 2 if self.bias else 1


@dataclass(frozen=True)
class Profile:
    """The role -> dataflow mapping of one backbone config (see the module docstring)."""

    family: str
    model_type: str
    model_class: str               # transformers class name, e.g. "BartForConditionalGeneration"
    pre_norm: bool                 # X is the un-normalised input of the sublayer's norm
    d_model: int
    attn_inner: int                # n_heads * d_kv (T5 can differ from d_model)
    n_heads: int
    vocab_size: int
    stacks: tuple[Stack, ...]
    norm: Norm
    token_embedding: str           # parameter name of the (shared) token embedding matrix
    leaves: tuple[str, ...]        # tracing leaves, patterns relative to a layer ('*' = one name)
    parameter_shapes: tuple[tuple[str, tuple[int, ...]], ...] = field(repr=False, default=())

    def stack(self, name: str) -> Stack | None:
        return next((s for s in self.stacks if s.name == name), None)

    @property
    def stack_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stacks)

    @cached_property
    def parameters(self) -> dict[str, tuple[int, ...]]:
        """Every parameter of the base model, name -> shape, tied tensors listed once (as
        ``named_parameters()`` lists them).  Buffers (``final_logits_bias``) are not parameters."""
        return dict(self.parameter_shapes)

    @cached_property
    def num_parameters(self) -> int:
        total = 0
        for shape in self.parameters.values():
            n = 1
            for s in shape:
                n *= s
            total += n
        return total

    def numel(self, name: str) -> int:
        n = 1
        for s in self.parameters[name]:
            n *= s
        return n

    def linear_dims(self, module: str) -> tuple[int, int]:
        """(in_features, out_features) of the nn.Linear at an absolute module path."""
        out_f, in_f = self.parameters[f"{module}.weight"]
        return in_f, out_f

    def is_leaf(self, relative_name: str) -> bool:
        """Whether a submodule (path relative to a layer) is a leaf when tracing the layer."""
        return any(leaf_regex(p).fullmatch(relative_name) for p in self.leaves)

    def describe(self) -> str:
        stacks = "+".join(str(s.n_layers) for s in self.stacks)
        kind = self.family if self.family == self.model_type else f"{self.family} ({self.model_type})"
        return f"{kind}, {stacks} layers, d_model {self.d_model}"


@lru_cache(maxsize=None)
def leaf_regex(pattern: str) -> re.Pattern:
    """A leaf pattern relative to a layer (``layer.*.*``; ``*`` = one name) as a regex."""
    return re.compile(r"[^.]+".join(re.escape(part) for part in pattern.split("*")))


@dataclass(frozen=True)
class Family:
    """A backbone family: the model types it covers and how to profile a config of it."""

    name: str
    model_types: tuple[str, ...]
    make_profile: Callable[[object], Profile]


class ShapeTable:
    """Helper for the families' parameter arithmetic: collects (name, shape) in module order."""

    def __init__(self):
        self.items: list[tuple[str, tuple[int, ...]]] = []

    def add(self, name: str, *shape: int):
        self.items.append((name, tuple(shape)))

    def linear(self, path: str, d_in: int, d_out: int, bias: bool = True):
        self.add(f"{path}.weight", d_out, d_in)
        if bias:
            self.add(f"{path}.bias", d_out)

    def norm(self, path: str, width: int, bias: bool = True):
        self.add(f"{path}.weight", width)
        if bias:
            self.add(f"{path}.bias", width)

    def freeze(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        return tuple(self.items)
