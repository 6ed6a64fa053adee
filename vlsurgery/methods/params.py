"""Hyperparameters of every PET method: frozen dataclasses whose field names are the DSL keywords.

Each field carries its schema in ``metadata`` (kind, allowed values, aliases, bounds, a one-line
doc), from which :func:`schema` derives the :class:`ParamSpec` table that validation, ``check``'s
summary, error messages ("expected one of ...") and the README are built from.  A method's
cross-field rules (``heads`` must divide ``r``) live in its ``problems()`` method.

Gate fields (``granularity``, ``gate_r``, ``gate_pool``, ``init_gate``, ``init_gate_down``,
``scale``) come from :class:`GateParams`, which every gateable method inherits: "where", "what
modification" and "which gate" are independent choices, as in Table 9 of the VL-PET paper.

How each part of a module starts is one key per part, ``init_<part>`` of kind ``init``
(``init_down``, ``init_up``, ``init_gate``, ``init_A``, ``init_feat``, ...; :func:`init_keys`).  The
older keys ``init`` (adapter, lite, compacter: Up; LoRA: ``gaussian``) and ``gate_init`` are still
read; :mod:`vlsurgery.methods.finalize` folds them onto the per-part keys.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from vlsurgery import caches

#: The five granularities of the gate G (docs/paper.md §2), with the paper's names as aliases.
GRANULARITIES = ("none", "scalar", "token", "vector", "matrix")
GRANULARITY_ALIASES = {"small": "scalar", "middlex": "token", "middley": "vector", "large": "matrix"}
ACTIVATIONS = ("gelu_new", "gelu", "relu", "silu", "tanh", "identity")

#: Kinds of site a method can be placed on (see vlsurgery.profiles): a sublayer (X = its input on
#: the residual stream, H = its output before the residual add), a projection (an nn.Linear:
#: X its input, H its output), or the input of a stack (where tokens can be prepended).
SITE_KINDS = ("sublayer", "projection", "input")


#: A call value of the language, ``normal(0.02)``: a name and one number.  Specs keep it as its
#: canonical text (a ``str``), so the DSL's ``normal(2e-2)`` and YAML's ``"normal(0.02)"`` agree.
CALL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\(\s*([-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)\s*\)")


def call_text(name: str, number: float) -> str:
    """The canonical text of a call value: ``call_text("normal", 2e-2) == "normal(0.02)"``."""
    number = float(number)
    return f"{name}({int(number) if number.is_integer() and abs(number) < 1e15 else repr(number)})"


#: How a part of an added module starts (an ``init`` kind of hyperparameter): ``default`` (PyTorch's
#: own initialisation of that layer), ``zero``, ``backbone`` (the backbone's initialiser: weights
#: normal with the config's init std, biases zero), ``normal(std)`` or ``uniform(a)`` (U(-a, a)).
INIT_WORDS = ("default", "zero", "backbone")
INIT_CALLS = ("normal", "uniform")


def _coerce_init(value) -> tuple[str | None, str | None]:
    if not isinstance(value, str):
        return None, f"found {value!r}"
    if value.lower() in INIT_WORDS:
        return value.lower(), None
    call = CALL.fullmatch(value.strip())
    if call and call.group(1).lower() in INIT_CALLS:
        scale = float(call.group(2))
        if not 0 < scale < float("inf"):
            return None, f"the scale of {value} must be a positive number"
        return call_text(call.group(1).lower(), scale), None
    return None, f"{value!r} is not an initialiser"


def hp(default: Any, doc: str, *, kind: str, choices=None, aliases=None, min=None, max=None):
    """Declare one hyperparameter: its default, a one-line doc and its schema.

    ``kind`` is one of ``int``, ``float``, ``str``, ``bool``, ``init`` (an initialiser, see
    :data:`INIT_WORDS`); ``int?`` is an int that may be left unset (None), to be derived from the
    site (``r`` from ``reduction``, ``gate_r`` from ``r``).
    """
    meta = dict(doc=doc, kind=kind, choices=tuple(choices) if choices else None,
                aliases=dict(aliases or {}), min=min, max=max)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ParamSpec:
    """The schema of one hyperparameter, derived from a dataclass field."""

    name: str
    kind: str
    default: Any
    doc: str
    choices: tuple[str, ...] | None = None
    aliases: dict = dataclasses.field(default_factory=dict, compare=False)
    min: float | None = None
    max: float | None = None

    def describe(self) -> str:
        """What a valid value looks like, for 'expected ...' in error messages."""
        if self.choices:
            names = list(self.choices) + sorted(self.aliases)
            return "one of " + ", ".join(names)
        text = {"int": "an integer", "int?": "an integer", "float": "a number", "bool": "true or false",
                "str": "a name", "init": "default, zero, backbone, normal(std) or uniform(a)"}[self.kind]
        if self.min is not None and self.max is not None:
            text += f" in [{self.min}, {self.max}]"
        elif self.min is not None:
            text += f" >= {self.min}"
        return text

    def coerce(self, value: Any) -> tuple[Any, str | None]:
        """Check and normalise a literal value: (canonical value, None) or (None, what is wrong).

        Ints are accepted where a float is expected; aliases of choices map to their canonical
        name (case-insensitively: ``middleY`` -> ``vector``).
        """
        kind = self.kind
        if kind == "init":
            canonical, complaint = _coerce_init(value)
            return (canonical, None) if complaint is None else (None, f"{self.name}: {complaint}")
        if kind == "bool":
            ok = isinstance(value, bool)
        elif kind in ("int", "int?"):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind == "float":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        else:
            ok = isinstance(value, str)
        if not ok:
            return None, f"{self.name} must be {self.describe()}, found {value!r}"
        if self.choices:
            canonical = value if value in self.choices else self.aliases.get(str(value).lower())
            if canonical is None and str(value).lower() in self.choices:
                canonical = str(value).lower()
            if canonical is None:
                return None, f"{value!r} is not a valid {self.name}"
            value = canonical
        if self.min is not None and value < self.min:
            return None, f"{self.name}={value} is out of range, must be >= {self.min}"
        if self.max is not None and value > self.max:
            return None, f"{self.name}={value} is out of range, must be <= {self.max}"
        return value, None


@caches.memoize("methods.schema")
def schema(params_cls) -> Mapping[str, ParamSpec]:
    """The ParamSpec of every field of a hyperparameter dataclass, by DSL keyword (read-only, built
    once per class: validation, planning and ``search`` ask for it once per statement)."""
    out = {}
    for f in dataclasses.fields(params_cls):
        m = f.metadata
        out[f.name] = ParamSpec(f.name, m["kind"], f.default, m["doc"], m["choices"], m["aliases"],
                                m["min"], m["max"])
    return MappingProxyType(out)


# --------------------------------------------------------------------------------------------
# The gate and the shared bottleneck fields


#: The ways the scalar (small) gate averages over the sequence (docs/paper.md §7): ``tokens``, the
#: real tokens only (padding-independent: an example's gate does not depend on its batch), or
#: ``all``, every position, padding included, as the reference implementation does.
GATE_POOLS = ("tokens", "all")

#: Gate fields that belong to one gate choice: a merge that sets ``granularity`` should reset them.
GATE_DETAILS = ("gate_r", "gate_init", "gate_pool", "init_gate", "init_gate_down")


def _init(doc: str):
    return hp("default", doc, kind="init")


def _legacy_problems(p, old: str, new: str, value_of=None) -> list[tuple[str, str]]:
    """The older spelling ``old`` (e.g. ``init=zero``) next to a different ``new`` (``init_up``)."""
    written = getattr(p, old)
    if written == "default" or getattr(p, new) in ("default", (value_of or (lambda v: v))(written)):
        return []
    return [(old, f"{old}={written} is the older spelling of {new}={(value_of or (lambda v: v))(written)}, "
                  f"but {new}={getattr(p, new)} is given too: keep only {new}")]


@dataclass(frozen=True)
class GateParams:
    """The granularity-controlled gate: H' = scale * G (.) (H + dH)."""

    granularity: str = hp("none", "gate G: none, scalar (small), token (middleX), vector (middleY), matrix (large)",
                          kind="str", choices=GRANULARITIES, aliases=GRANULARITY_ALIASES)
    gate_r: int | None = hp(None, "rank of the matrix gate's low-rank generator (default: the method's r)",
                            kind="int?", min=1)
    gate_init: str = hp("default", "older spelling of init_gate=zero on the matrix gate", kind="str",
                        choices=("default", "zero"))
    gate_pool: str = hp("tokens", "the scalar gate's mean: tokens (real tokens only) or all (every position, "
                                  "padding included, as the reference)", kind="str", choices=GATE_POOLS)
    init_gate: str = _init("the part that sets G's start: the scalar/token gate's Linear, the vector gate's z, "
                           "the matrix gate's Up (zero: G starts at 0.5, or 1 for the vector gate)")
    init_gate_down: str = _init("the matrix gate's Down")
    scale: float = hp(1.0, "constant scaling factor s", kind="float")

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if self.granularity != "matrix" and self.gate_r is not None:
            out.append(("gate_r", f"gate_r only applies to granularity=matrix, not {self.granularity}"))
        if self.granularity != "matrix" and self.gate_init != "default":
            out.append(("gate_init", f"gate_init only applies to granularity=matrix, not {self.granularity}"))
        if self.granularity != "matrix" and self.init_gate_down != "default":
            out.append(("init_gate_down", f"init_gate_down is the matrix gate's Down; granularity={self.granularity} "
                                          "has none"))
        if self.granularity != "scalar" and self.gate_pool != "tokens":
            out.append(("gate_pool", f"gate_pool only applies to granularity=scalar (small), the gate that "
                                     f"averages over the sequence, not {self.granularity}"))
        if self.granularity == "none" and self.init_gate != "default":
            out.append(("init_gate", "init_gate initialises the gate, but granularity=none builds no gate"))
        out += _legacy_problems(self, "gate_init", "init_gate")
        if self.granularity == "matrix" and self.init_gate == "zero" and self.init_gate_down == "zero":
            out.append(("init_gate_down", _DEAD.format(down="init_gate_down", up="init_gate")))
        return out


#: Both halves of a product starting at zero: neither ever receives a gradient.
_DEAD = ("{down}=zero and {up}=zero: with both factors at zero neither ever gets a gradient, so the "
         "module never learns; zero only {up} (the usual choice: the module starts as a no-op)")


def _bottleneck_problems(p) -> list[tuple[str, str]]:
    out = []
    if getattr(p, "heads", 1) > 1 and p.r is not None and p.r % p.heads:
        out.append(("heads", f"heads={p.heads} must divide r={p.r} (each head is a d -> r/heads projection)"))
    out += _legacy_problems(p, "init", "init_up")
    if p.init_down == "zero" and p.init_up == "zero":
        out.append(("init_down", _DEAD.format(down="init_down", up="init_up")))
    return out


_LEGACY_UP = "older spelling of init_up: default or zero"


@dataclass(frozen=True)
class AdapterParams(GateParams):
    """Bottleneck adapter dH = Up(act(Down(.))), Down split into ``heads`` heads (VL-PET's multi-head)."""

    r: int | None = hp(None, "bottleneck width (default: d / reduction)", kind="int?", min=1)
    reduction: int = hp(8, "d / r when r is not given (VL-Adapter uses 8)", kind="int", min=1)
    heads: int = hp(1, "heads of the down-projection; must divide r", kind="int", min=1)
    activation: str = hp("gelu_new", "activation between Down and Up", kind="str", choices=ACTIVATIONS)
    placement: str = hp("sequential", "sequential (dH reads H) or parallel (dH reads X)", kind="str",
                        choices=("sequential", "parallel"))
    init: str = hp("default", _LEGACY_UP, kind="str", choices=("default", "zero"))
    init_down: str = _init("Down (every head)")
    init_up: str = _init("Up (zero: dH starts at 0)")

    def problems(self):
        return super().problems() + _bottleneck_problems(self)


@dataclass(frozen=True)
class LiteParams:
    """VL-PET's decoder design: parallel adapter v'(x) = v(x) + Up(act(Down(x))), no gate."""

    r: int = hp(96, "bottleneck width r_v", kind="int", min=1)
    activation: str = hp("gelu_new", "activation between Down and Up", kind="str", choices=ACTIVATIONS)
    init: str = hp("default", _LEGACY_UP, kind="str", choices=("default", "zero"))
    init_down: str = _init("Down")
    init_up: str = _init("Up (zero: the adapter starts adding 0)")

    def problems(self):
        return _bottleneck_problems(self)


@dataclass(frozen=True)
class CompacterParams(GateParams):
    """Compacter: a bottleneck whose Down and Up are PHM layers, W = sum_i A_i (x) B_i."""

    r: int | None = hp(None, "bottleneck width (default: d / reduction)", kind="int?", min=1)
    reduction: int = hp(8, "d / r when r is not given", kind="int", min=1)
    n: int = hp(4, "number of Kronecker summands; must divide d and r", kind="int", min=1)
    phm_rank: int = hp(1, "rank of the factorised B_i = s_i t_i^T (0: full B_i)", kind="int", min=0)
    shared: bool = hp(True, "share the A_i across all Compacter sites of the model", kind="bool")
    activation: str = hp("gelu_new", "activation between Down and Up", kind="str", choices=ACTIVATIONS)
    placement: str = hp("sequential", "sequential (dH reads H) or parallel (dH reads X)", kind="str",
                        choices=("sequential", "parallel"))
    init: str = hp("default", _LEGACY_UP, kind="str", choices=("default", "zero"))
    init_down: str = _init("Down's PHM factors: default (Glorot-uniform) or zero")
    init_up: str = _init("Up's PHM factors: default (Glorot-uniform) or zero (dH starts at 0)")

    def problems(self):
        out = super().problems() + _bottleneck_problems(self)
        for key in ("init_down", "init_up"):
            if getattr(self, key) not in ("default", "zero"):
                out.append((key, f"{key}={getattr(self, key)}: a PHM layer's weight is a sum of Kronecker "
                                 "products, not a matrix to sample; compacter takes default or zero"))
        if self.r is not None and self.r % self.n:
            out.append(("n", f"n={self.n} must divide r={self.r}"))
        return out


@dataclass(frozen=True)
class LoRAParams(GateParams):
    """LoRA on a projection: h' = W x + (alpha / r) B A x."""

    r: int = hp(8, "rank of the update", kind="int", min=1)
    alpha: float = hp(8.0, "scaling numerator: the update is multiplied by alpha / r", kind="float")
    dropout: float = hp(0.0, "dropout on the LoRA input", kind="float", min=0.0, max=1.0)
    init: str = hp("default", "older spelling: gaussian is init_A=normal(1/r)", kind="str",
                   choices=("default", "gaussian"))
    init_A: str = _init("A (default: kaiming-uniform, as nn.Linear's weight)")
    init_B: str = _init("B (default: zero, so dH starts at 0)")

    def problems(self):
        out = super().problems() + _legacy_problems(self, "init", "init_A", lambda v: call_text("normal", 1 / self.r))
        if self.init_A == "zero" and self.init_B in ("zero", "default"):
            out.append(("init_A", _DEAD.format(down="init_A", up="init_B")))
        return out


@dataclass(frozen=True)
class IA3Params:
    """(IA)^3: h' = l (.) h, a learned vector over the output channels, initialised to ones."""

    init: float = hp(1.0, "initial value of the scaling vector", kind="float")

    def problems(self):
        return []


@dataclass(frozen=True)
class GateOnlyParams(GateParams):
    """No modification, only the gate: H' = scale * G (.) H."""


@dataclass(frozen=True)
class PromptParams:
    """Prompt tuning: ``length`` trainable vectors prepended to the stack's input tokens."""

    length: int = hp(20, "number of prompt vectors", kind="int", min=1)
    init: str = hp("vocab", "vocab (copies of random token embeddings) or normal (std 0.02)", kind="str",
                   choices=("vocab", "normal"))

    def problems(self):
        return []


@dataclass(frozen=True)
class ProjectorParams:
    """The visual projector of VL-BART / VL-T5 (docs/paper.md §5)."""

    feat_dim: int = hp(2048, "size of one region feature vector (CLIP RN101 grid: 2048)", kind="int", min=1)
    pos_dim: int = hp(5, "size of one region's box input: x1, x2, y1, y2 and the area", kind="int", min=1)
    images: int = hp(2, "rows of the image-order embedding (NLVR2 pairs two images)", kind="int", min=1)
    init_feat: str = _init("the feature Linear (feat_dim -> d)")
    init_pos: str = _init("the box Linear (pos_dim -> d)")
    init_img_order: str = _init("the image-order embedding (default: N(0, 1), as nn.Embedding)")

    def problems(self):
        return []


@dataclass(frozen=True)
class NoneParams:
    """``none``: remove whatever earlier statements placed on these sites."""

    def problems(self):
        return []


def init_keys(params_cls) -> tuple[str, ...]:
    """The ``init_<part>`` keys of a hyperparameter class (its fields of kind ``init``)."""
    return tuple(f.name for f in dataclasses.fields(params_cls) if f.metadata["kind"] == "init")


def uses_backbone_init(params) -> bool:
    """Whether some part of ``params`` starts from the backbone's initialiser (``init_*=backbone``)."""
    return params is not None and any(getattr(params, key) == "backbone" for key in init_keys(type(params)))


#: Method name -> (hyperparameter class, site kinds it may be placed on).
#: The modules and parameter counts behind each name are registered in vlsurgery.methods.
METHOD_PARAMS: dict[str, tuple[type, tuple[str, ...]]] = {
    "adapter": (AdapterParams, ("sublayer", "projection")),
    "lite": (LiteParams, ("sublayer", "projection")),
    "compacter": (CompacterParams, ("sublayer", "projection")),
    "lora": (LoRAParams, ("projection",)),
    "ia3": (IA3Params, ("sublayer", "projection")),
    "gate": (GateOnlyParams, ("sublayer", "projection")),
    "prompt": (PromptParams, ("input",)),
    "none": (NoneParams, SITE_KINDS),
}

#: The method a statement means when it names none and no earlier statement chose one.
DEFAULT_METHOD = "adapter"
