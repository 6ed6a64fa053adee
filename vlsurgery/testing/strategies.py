"""Hypothesis strategies for PET designs and small backbones (see :mod:`vlsurgery.testing`).

Everything is built from small choices (``sampled_from`` lists start with the simplest option,
integers shrink towards small ones), so a failing example shrinks to a short, readable spec: one
statement, one layer, default parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from hypothesis import assume, strategies as st

from vlsurgery.methods.params import METHOD_PARAMS
from vlsurgery.profiles import Roles, known_families, vocabulary
from vlsurgery.spec.addresses import INPUT
from vlsurgery.spec.ir import Address, Index, Param, Projector, Range, Ref, Segment, Spec, Statement
from vlsurgery.testing.backbones import FAMILIES, backbones, ints as _ints, pick as _pick, references

#: Methods in shrinking order (the first is what a failing example shrinks towards).
METHODS = ("adapter", "lite", "lora", "ia3", "gate", "compacter", "prompt", "none")
#: Every role ``specs(roles=...)`` knows: the sublayer and projection roles of every registered
#: backbone family, and ``input``.
ROLES = vocabulary().sublayers() + vocabulary().projections() + (INPUT,)


# --------------------------------------------------------------------------------------------
# what a backbone looks like to the spec generator


@dataclass(frozen=True)
class Shape:
    """What the spec generator must respect: layers per stack, the roles, widths, biases."""

    layers: dict
    roles: Roles
    width_gcd: int
    min_width: int
    has_bias: bool


#: The shape of every backbone ``backbones()`` draws: specs generated for it resolve on all of them.
GENERIC = Shape({"encoder": 1, "decoder": 1}, Roles.common(known_families()["bart"].roles, known_families()["t5"].roles),
                4, 8, False)


def shape_of(backbone) -> Shape:
    from vlsurgery.planning.slots import slots
    from vlsurgery.profiles import load_backbone

    profile = load_backbone(backbone).profile
    widths = {w for s in slots(profile) for w in (s.dims.d_in, s.dims.d_out)}
    return Shape({s.name: s.n_layers for s in profile.stacks}, profile.roles,
                 math.gcd(*widths), min(widths), any(n.endswith(".bias") for n in profile.parameters))


# --------------------------------------------------------------------------------------------
# addresses


def _stack_choices(shape: Shape) -> list:
    """Each stack alone, every stack (``*``), and all of them as an alternation."""
    names = tuple(shape.layers)
    return [(n,) for n in names] + [None] + ([tuple(sorted(names))] if len(names) > 1 else [])


def _sublayers(shape: Shape, stacks, roles) -> list[str]:
    """The sublayer roles every one of ``stacks`` has (and ``roles`` allows), in model order."""
    return [r for r in shape.roles.sublayers(stacks[0])
            if all(r in shape.roles.sublayers(n) for n in stacks) and r in roles]


def _projections(shape: Shape, stacks, sublayers, roles) -> list[str]:
    """The projection roles every one of ``sublayers`` has in every one of ``stacks``."""
    return [p for p in shape.roles.projections()
            if all(p in shape.roles.projections(n, sub) for n in stacks for sub in sublayers) and p in roles]


@lru_cache(maxsize=None)
def _layers(n: int):
    """None (every layer) or a selection valid for n layers."""
    if n < 1:
        return st.none()
    item = st.one_of(
        _ints(0, n - 1).map(Index),
        _ints(1, n).map(lambda k: Index(-k)),
        _ints(0, n - 1).flatmap(lambda a: _ints(a + 1, n).map(lambda b: Range(a, b))),
        _ints(1, n).map(lambda k: Range(-k, None)),
        _ints(1, n).map(lambda k: Range(None, k)),
    )
    return st.one_of(st.none(), st.lists(item, min_size=1, max_size=2).map(tuple))


def _subset(draw, options):
    """A non-empty subset of options, in a canonical order (shrinks to the first option)."""
    first = draw(_pick(options))
    more = draw(st.lists(_pick(options), max_size=2)) if len(options) > 1 else []
    return tuple(dict.fromkeys([first] + more))


@st.composite
def _address(draw, kind: str, shape: Shape, roles):
    if kind == "input":  # prefix tokens go to a stack that takes them (the encoder)
        return Address((Segment((draw(_pick(shape.roles.inputs)),)), Segment((INPUT,))))
    usable = []
    for s in _stack_choices(shape):
        names = s or tuple(shape.layers)
        common = _sublayers(shape, names, roles)
        if kind == "projection":
            common = [r for r in common if _projections(shape, names, (r,), roles)]
        if common:
            usable.append((s, tuple(common)))
    assume(usable)
    stack, subs = draw(_pick(usable))
    names = stack or tuple(shape.layers)
    selection = draw(_layers(min(shape.layers[name] for name in names)))
    every = all(r in roles for name in names for r in shape.roles.sublayers(name))
    if kind == "sublayer":
        if every and draw(st.booleans()):  # `encoder[0:2]` and `encoder.*`: every sublayer
            return Address((Segment(stack, selection),) + ((Segment(None),) if draw(st.booleans()) else ()))
        return Address((Segment(stack, selection), Segment(_subset(draw, subs))))
    chosen = _subset(draw, subs)
    projs = _projections(shape, names, chosen, roles)
    if not projs:
        chosen = chosen[:1]
        projs = _projections(shape, names, chosen, roles)
    return Address((Segment(stack, selection), Segment(chosen), Segment(_subset(draw, projs))))


# --------------------------------------------------------------------------------------------
# hyperparameters: each method's generator gives values that are valid on every site of the shape


def _maybe(draw, params: dict, key: str, strategy):
    if draw(st.booleans()):
        params[key] = draw(strategy)


def _gate(draw, params: dict, kind: str, required: bool = False):
    choices = ["vector", "scalar", "matrix", "large", "small", "middleY"]
    if kind == "sublayer":
        choices += ["token", "middleX"]  # a token gate needs d_in == d_out: sublayers only
    if not required and not draw(st.booleans()):
        return
    params["granularity"] = g = draw(_pick(choices))
    if g in ("matrix", "large"):
        if required or draw(st.booleans()):
            params["gate_r"] = draw(_ints(1, 8))
        if draw(st.booleans()):
            params["gate_init"] = "zero"
    _maybe(draw, params, "scale", _pick([0.5, 2.0, 0.3]))


def _params(draw, method: str, kind: str, shape: Shape) -> dict:
    p: dict = {}
    if method in ("adapter", "compacter"):
        n = draw(_pick([k for k in (2, 1, 4) if shape.width_gcd % k == 0])) if method == "compacter" else 1
        if method == "compacter":
            p["n"] = n
            p["r"] = n * draw(_ints(1, 4))
            _maybe(draw, p, "phm_rank", _ints(0, 2))
            _maybe(draw, p, "shared", st.booleans())
        elif draw(st.booleans()):
            heads = draw(_pick([1, 2, 4]))
            p["r"] = heads * draw(_ints(1, 4))
            if heads > 1 or draw(st.booleans()):
                p["heads"] = heads
        else:
            _maybe(draw, p, "reduction", _pick([r for r in (8, 2, 4) if r <= shape.min_width]))
        _maybe(draw, p, "placement", _pick(["parallel", "sequential"]))
        _maybe(draw, p, "activation", _pick(["relu", "gelu", "identity"]))
        _maybe(draw, p, "init", _pick(["zero", "default"]))
        _gate(draw, p, kind)
    elif method == "lite":
        _maybe(draw, p, "r", _ints(1, 8))
        _maybe(draw, p, "init", _pick(["zero", "default"]))
    elif method == "lora":
        _maybe(draw, p, "r", _ints(1, 8))
        _maybe(draw, p, "alpha", _pick([16.0, 8.0, 1.0]))
        _maybe(draw, p, "dropout", _pick([0.1, 0.0]))
        _gate(draw, p, kind)
    elif method == "ia3":
        _maybe(draw, p, "init", _pick([0.5, 1.0]))
    elif method == "gate":
        _gate(draw, p, kind, required=True)
    elif method == "prompt":
        _maybe(draw, p, "length", _ints(1, 4))
        _maybe(draw, p, "init", _pick(["normal", "vocab"]))
    return p


# --------------------------------------------------------------------------------------------
# specs


class _Lets:
    """Binds some integer values to ``let`` names: ``let r = 8`` ... ``r=$r``."""

    NAMES = ("r", "w", "k", "m", "s", "t")

    def __init__(self):
        self.by_value: dict[int, str] = {}

    def value(self, draw, value):
        if isinstance(value, bool) or not isinstance(value, int) or not draw(st.booleans()):
            return value
        if value not in self.by_value:
            if len(self.by_value) == len(self.NAMES):
                return value
            self.by_value[value] = self.NAMES[len(self.by_value)]
        return Ref(self.by_value[value])

    def params(self) -> tuple[Param, ...]:
        return tuple(Param(name, value) for value, name in self.by_value.items())


def _kinds(method: str, roles, shape: Shape) -> tuple[str, ...]:
    """The site kinds a method may go on (its registry entry says) that ``roles`` can address."""
    ok = {"input": INPUT in roles and bool(shape.roles.inputs),
          "sublayer": any(r in roles for r in shape.roles.sublayers()),
          "projection": any(r in roles for r in shape.roles.projections())}
    return tuple(k for k in METHOD_PARAMS[method][1] if ok[k])


@st.composite
def _statements(draw, shape: Shape, methods, roles, min_size: int, max_size: int, lets):
    out: list[Statement] = []
    previous = None  # (the last statement with a method, its values with lets unbound)
    choices = [m for m in METHODS if m in methods and _kinds(m, roles, shape)]
    if not choices:
        raise ValueError(f"no method of {tuple(methods)} can go on the roles {tuple(roles)}")
    for _ in range(draw(_ints(min_size, max_size))):
        if previous is not None and previous[0].method != "none" and draw(_ints(0, 3)) == 0:
            # a refinement, as in the paper's design cards: the same sites, new values, no method
            stmt, raw = previous
            values = _params(draw, stmt.method, _kind_of(stmt.target), shape)
            merged = raw | values
            if values and _consistent(stmt.method, merged):
                out.append(Statement(stmt.target, None, _bind(draw, values, lets)))
                previous = (stmt, merged)
            continue
        method = draw(_pick(choices))
        kind = draw(_pick(_kinds(method, roles, shape)))
        target = draw(_address(kind, shape, roles))
        values = {} if method == "none" else _params(draw, method, kind, shape)
        out.append(Statement(target, method, _bind(draw, values, lets)))
        previous = (out[-1], values)
    return tuple(out)


def _kind_of(address: Address) -> str:
    from vlsurgery.spec.addresses import kind

    return kind(address)


def _consistent(method: str, values: dict) -> bool:
    """Whether merged values keep the method's cross-field rules (heads | r, gate_r with a matrix)."""
    from vlsurgery.methods.params import METHOD_PARAMS, schema

    cls = METHOD_PARAMS[method][0]
    fields = schema(cls)
    coerced = {k: fields[k].coerce(v)[0] for k, v in values.items()}
    if method == "adapter" and "heads" in coerced and "r" not in coerced:
        return False  # r from d / reduction need not be divisible by heads
    if method == "gate" and coerced.get("granularity") == "matrix" and "gate_r" not in coerced:
        return False
    return not cls(**coerced).problems()


def _bind(draw, values: dict, lets) -> tuple[Param, ...]:
    return tuple(Param(k, lets.value(draw, v) if lets is not None else v) for k, v in values.items())


@st.composite
def _train(draw, shape: Shape, has_projector: bool):
    targets = []
    for _ in range(draw(_ints(0, 2))):
        options = ["layernorm"] + (["projector"] if has_projector else []) + (["bias"] if shape.has_bias else [])
        what = draw(_pick(options))
        if what == "projector":
            targets.append(Address((Segment(("projector",)),)))
            continue
        stack = draw(_pick(_stack_choices(shape)))
        names = stack or tuple(shape.layers)
        n = min(shape.layers[s] for s in names)
        segs = [Segment(stack, draw(_layers(n)))]
        common = _sublayers(shape, names, ROLES)
        if what == "layernorm" and draw(st.booleans()):
            segs.append(Segment((draw(_pick(common)),)))
        targets.append(Address(tuple(segs) + (Segment((what,)),)))
    return tuple(targets)


def specs(methods=METHODS, roles=ROLES, max_statements: int = 4, min_statements: int = 1, backbone=None,
          lets: bool = True, projector: bool = True, train: bool = True):
    """Valid PET designs as :class:`~vlsurgery.spec.Spec` IR.

    ``methods``: the methods statements may use (``none`` included by default); ``roles``: the
    roles addresses may name, of ``self_attn``, ``ffn``, ``cross_attn``, ``q``, ``v``, ``k``,
    ``o``, ``in``, ``out`` and ``input``; ``min_statements``/``max_statements``: how many
    statements (a refinement that would break a cross-field rule is dropped, so a few specs have
    fewer); ``lets``: bind some integers to ``let`` names (``r=$r``); ``projector``/``train``:
    may declare a projector / ``train`` targets.

    ``backbone`` (a preset name, a PretrainedConfig, a model): every spec resolves on it, using
    its real layer counts and widths; a preset name is also written into the spec.  Without one,
    specs name no backbone and resolve on every config :func:`backbones` draws (one layer
    selected at most, widths as those configs have, no ``bias`` targets).
    """
    unknown = [m for m in methods if m not in METHODS] + [r for r in roles if r not in ROLES]
    if unknown:
        raise ValueError(f"unknown methods or roles {unknown}: methods are {METHODS}, roles {ROLES}")
    if not 0 <= min_statements <= max_statements:
        raise ValueError(f"need 0 <= min_statements <= max_statements, got {min_statements}, {max_statements}")
    shape = GENERIC if backbone is None else _cached_shape(backbone)
    return _specs(tuple(methods), tuple(roles), min_statements, max_statements, backbone, shape, lets, projector,
                  train)


@st.composite
def _specs(draw, methods, roles, min_statements, max_statements, backbone, shape, lets, projector, train):
    let_table = _Lets() if lets else None
    statements = draw(_statements(shape, methods, roles, min_statements, max_statements, let_table))
    proj = None
    if projector and draw(st.booleans()):
        params = {}
        _maybe(draw, params, "feat_dim", _ints(1, 16))
        _maybe(draw, params, "pos_dim", _ints(1, 5))
        _maybe(draw, params, "images", _ints(1, 3))
        proj = Projector(tuple(Param(k, v) for k, v in params.items()))
    targets = draw(_train(shape, proj is not None)) if train else ()
    spec = Spec(backbone=backbone if isinstance(backbone, str) else None,
                lets=let_table.params() if let_table else (), projector=proj, train=targets, statements=statements)
    assume(_valid(spec, backbone))
    return spec


_SHAPES: dict[str, Shape] = {}


def _cached_shape(backbone) -> Shape:
    if not isinstance(backbone, str):
        return shape_of(backbone)  # profiles are cached by config content; this is cheap
    if backbone not in _SHAPES:
        _SHAPES[backbone] = shape_of(backbone)
    return _SHAPES[backbone]


def _valid(spec: Spec, backbone) -> bool:
    """Spec-level validation, and resolution on the backbone when there is one."""
    from vlsurgery.errors import SpecError
    from vlsurgery.spec import validate

    if any(p.severity == "error" for p in validate(spec)):
        return False
    from vlsurgery.planning import plan

    try:
        for bb in ([backbone] if backbone is not None else references()):
            plan(spec, bb)
    except SpecError:
        return False
    return True


def designs(families=FAMILIES, **spec_options):
    """``(config, spec)`` pairs: a backbone from :func:`backbones` and a spec resolvable on it."""
    return backbones(families).flatmap(lambda config: specs(backbone=config, **spec_options)
                                       .map(lambda spec: (config, spec)))
