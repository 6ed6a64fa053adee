"""What a backbone family looks like to vlsurgery: roles -> module paths and dataflow points.

A :class:`Profile` is plain data computed from one config.  It says, for each stack (``encoder``,
``decoder``): where its layers live (``model.encoder.layers.<i>``), which sublayers a layer has and,
for each sublayer, the two dataflow points X and H (notation: ``"<module>:in"`` / ``"<module>:out"``,
relative to the layer), its layer norm and its projections (``q`` -> ``self_attn.q_proj``).  It also
lists every parameter of the base model with its shape, which is how vlsurgery counts parameters
and resolves ``train`` targets without building a model.

A family (``vlsurgery/profiles/families/bart.py``, ``t5.py``) is one :class:`Family` object: the
model types it covers, its role vocabulary (:class:`Roles`) and a function config -> Profile.
Adding a family is writing one such module in that folder: it is found by scanning the folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

from vlsurgery import caches

@dataclass(frozen=True)
class Roles:
    """An address vocabulary: which stacks exist, their sublayers, each sublayer's projection roles,
    and which stacks take prefix tokens at their input.  Names keep the order they are declared in
    (the order they run in a model); callers sort where they print choices.

    A family declares the roles any of its configs can have; a :class:`Profile` has the exact roles
    of one config; :meth:`union` merges vocabularies (what the spec language accepts without a
    backbone)::

        >>> r = Roles.of({"encoder": {"self_attn": ("q", "v"), "ffn": ("in", "out")}}, inputs=("encoder",))
        >>> r.sublayers("encoder"), r.projections("encoder", "ffn"), r.projections()
        (('self_attn', 'ffn'), ('in', 'out'), ('q', 'v', 'in', 'out'))
    """

    stacks: tuple[tuple[str, tuple[tuple[str, tuple[str, ...]], ...]], ...]
    inputs: tuple[str, ...] = ()

    @classmethod
    def of(cls, mapping: dict, inputs=()) -> "Roles":
        """From ``{stack: {sublayer: (projection roles...)}}``."""
        return cls(tuple((stack, tuple((sub, tuple(dict.fromkeys(projs))) for sub, projs in subs.items()))
                         for stack, subs in mapping.items()), tuple(dict.fromkeys(inputs)))

    @staticmethod
    def union(*vocabularies: "Roles") -> "Roles":
        merged: dict[str, dict[str, dict]] = {}
        for roles in vocabularies:
            for stack, subs in roles.stacks:
                for sub, projs in subs:
                    merged.setdefault(stack, {}).setdefault(sub, {}).update(dict.fromkeys(projs))
        return Roles.of(merged, [s for roles in vocabularies for s in roles.inputs])

    @staticmethod
    def common(first: "Roles", *others: "Roles") -> "Roles":
        """The roles every vocabulary has (what fits all of several backbones)."""
        return Roles.of({stack: {sub: [p for p in projs if all(p in o.projections(stack, sub) for o in others)]
                                 for sub, projs in subs if all(sub in o.sublayers(stack) for o in others)}
                         for stack, subs in first.stacks if all(stack in o.stack_names() for o in others)},
                        [s for s in first.inputs if all(s in o.inputs for o in others)])

    def stack_names(self) -> tuple[str, ...]:
        return tuple(stack for stack, _ in self.stacks)

    def sublayers(self, stack: str | None = None) -> tuple[str, ...]:
        """The sublayers of one stack, or of any stack (None)."""
        return tuple(dict.fromkeys(sub for name, subs in self.stacks if stack in (None, name) for sub, _ in subs))

    def projections(self, stack: str | None = None, sublayer: str | None = None) -> tuple[str, ...]:
        """The projection roles of a sublayer of a stack; None for either means any."""
        return tuple(dict.fromkeys(p for name, subs in self.stacks if stack in (None, name)
                                   for sub, projs in subs if sublayer in (None, sub) for p in projs))


#: The vocabulary of the classic encoder-decoder transformer (BART, T5 and their kin): attention
#: projections q k v o, feed-forward projections in (every input projection) and out; prefix
#: tokens go to the encoder's input.
ENCODER_DECODER = Roles.of({"encoder": {"self_attn": ("q", "k", "v", "o"), "ffn": ("in", "out")},
                            "decoder": {"self_attn": ("q", "k", "v", "o"), "cross_attn": ("q", "k", "v", "o"),
                                        "ffn": ("in", "out")}}, inputs=("encoder",))


@dataclass(frozen=True)
class Sublayer:
    """One sublayer of a layer, all paths relative to the layer module.

    ``x_point``/``h_point``: X (the sublayer's input on the residual stream) and H (its output before
    the residual add).  ``projections``: (role, linear paths) pairs; a role may map to several
    linears (``in`` -> ``wi_0``, ``wi_1`` in gated T5).  ``norm``: the layer norm that belongs to the
    sublayer.  ``owns``: module paths whose parameters belong to the sublayer (for ``.bias`` targets).
    ``columns``: (role, (start, stop)) for a role that is a slice of a fused projection's output
    (GPT-2's ``c_attn`` computes q, k and v at once: ``q`` -> columns [0, d)); a site on such a role
    reads the projection's input x and changes only those output columns.
    """

    name: str
    x_point: str
    h_point: str
    norm: str
    projections: tuple[tuple[str, tuple[str, ...]], ...]
    owns: tuple[str, ...]
    columns: tuple[tuple[str, tuple[int, int]], ...] = ()

    def linears(self, role: str) -> tuple[str, ...]:
        return dict(self.projections).get(role, ())

    def columns_of(self, role: str) -> tuple[int, int] | None:
        """The (start, stop) output columns of a fused projection that ``role`` is, or None (all)."""
        return dict(self.columns).get(role)

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
    takes_prefix: bool = False     # visual and prompt tokens can be prepended to its input
    #: the width of this stack's residual stream when it differs from ``Profile.d_model`` (a
    #: composite model's vision tower: LLaVA's is 1024 wide, its language model 4096); None: the same
    d_model: int | None = None

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
    #: module path of the model's own multimodal projector (LLaVA's ``model.multi_modal_projector``):
    #: ``train projector`` trains its parameters, and no vlsurgery projector can be added; "" if none
    own_projector: str = ""
    #: module paths whose weight is stored (in, out), as transformers' Conv1D (GPT-2) stores it,
    #: instead of nn.Linear's (out, in)
    transposed_weights: tuple[str, ...] = field(repr=False, default=())

    def stack(self, name: str) -> Stack | None:
        return next((s for s in self.stacks if s.name == name), None)

    @property
    def stack_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stacks)

    @property
    def decoder_only(self) -> bool:
        """Whether the backbone is decoder-only (LLaMA, GPT-2): it has no encoder stack."""
        return self.stack("encoder") is None

    @cached_property
    def roles(self) -> Roles:
        """The exact address vocabulary of this config."""
        return Roles.of({st.name: {sub.name: sub.roles for sub in st.sublayers} for st in self.stacks},
                        [st.name for st in self.stacks if st.takes_prefix])

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
        """(in_features, out_features) of the projection (nn.Linear or Conv1D) at an absolute module path."""
        if module in self._transposed:
            in_f, out_f = self.parameters[f"{module}.weight"]
        else:
            out_f, in_f = self.parameters[f"{module}.weight"]
        return in_f, out_f

    @cached_property
    def _transposed(self) -> frozenset[str]:
        return frozenset(self.transposed_weights)

    def is_leaf(self, relative_name: str) -> bool:
        """Whether a submodule (path relative to a layer) is a leaf when tracing the layer."""
        return any(leaf_regex(p).fullmatch(relative_name) for p in self.leaves)

    def describe(self) -> str:
        stacks = "+".join(str(s.n_layers) for s in self.stacks)
        kind = self.family if self.family == self.model_type else f"{self.family} ({self.model_type})"
        return f"{kind}, {stacks} layers, d_model {self.d_model}"


@caches.memoize("profiles.leaf_regex")
def leaf_regex(pattern: str) -> re.Pattern:
    """A leaf pattern relative to a layer (``layer.*.*``; ``*`` = one name) as a regex."""
    return re.compile(r"[^.]+".join(re.escape(part) for part in pattern.split("*")))


@dataclass(frozen=True)
class Family:
    """A backbone family: the model types it covers, the roles any of its configs may have, and how
    to profile a config of it (``make_profile(config).roles`` is always within ``roles``)."""

    name: str
    model_types: tuple[str, ...]
    roles: Roles
    make_profile: Callable[[object], Profile]
    #: ``from_pretrained`` gives ``lm_head`` its own tensor exactly when the checkpoint stores one,
    #: whatever the config says (T5 in transformers 5); the backbone loader then reads the files.
    lm_head_from_checkpoint: bool = False


class ShapeTable:
    """Helper for the families' parameter arithmetic: collects (name, shape) in module order."""

    def __init__(self):
        self.items: list[tuple[str, tuple[int, ...]]] = []
        self.transposed: list[str] = []  # Conv1D module paths, for Profile.transposed_weights

    def add(self, name: str, *shape: int):
        self.items.append((name, tuple(shape)))

    def linear(self, path: str, d_in: int, d_out: int, bias: bool = True):
        self.add(f"{path}.weight", d_out, d_in)
        if bias:
            self.add(f"{path}.bias", d_out)

    def conv1d(self, path: str, d_in: int, d_out: int):
        """transformers' Conv1D (GPT-2): a Linear whose weight is stored transposed, (d_in, d_out)."""
        self.add(f"{path}.weight", d_in, d_out)
        self.add(f"{path}.bias", d_out)
        self.transposed.append(path)

    def norm(self, path: str, width: int, bias: bool = True):
        self.add(f"{path}.weight", width)
        if bias:
            self.add(f"{path}.bias", width)

    def freeze(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        return tuple(self.items)
