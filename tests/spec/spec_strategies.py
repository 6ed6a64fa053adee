"""Hypothesis strategies for valid spec IR (shared by the spec tests)."""

from __future__ import annotations

import string

from hypothesis import strategies as st

from vlsurgery.methods.params import METHOD_PARAMS, ProjectorParams, schema
from vlsurgery.profiles import vocabulary
from vlsurgery.spec.grammar import KEYWORDS
from vlsurgery.spec.ir import Address, Index, Param, Projector, Range, Ref, Segment, Spec, Statement

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(lambda s: s not in KEYWORDS)
texts = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12).filter(str.strip)
paths = st.one_of(st.sampled_from(["bart-base", "t5-base", "facebook/bart-base", "./models/t5", "a b"]), texts)
floats = st.floats(-1e18, 1e18, allow_nan=False, allow_infinity=False, width=64)  # the language's range

LET_VALUES = st.one_of(st.integers(-10**6, 10**6), floats, st.booleans(), texts)
LET_NAMES = ["r", "h", "rv", "s", "g"]
LET_TABLE = {"r": 96, "h": 4, "rv": 64, "s": 0.3, "g": "middleY"}

layer_item = st.one_of(
    st.builds(Index, st.integers(-12, 11)),
    st.builds(Range, st.integers(0, 5), st.integers(6, 12)),
    st.builds(Range, st.integers(-6, -3), st.one_of(st.none(), st.integers(-2, -1))),
    st.builds(Range, st.none(), st.integers(1, 12)),
)
layers = st.one_of(st.none(), st.lists(layer_item, min_size=1, max_size=3).map(tuple))


@st.composite
def site_address(draw, kinds):
    """An address whose roles fit, of one of the given site kinds; returns (kind, Address)."""
    kind = draw(st.sampled_from(kinds))
    stack = draw(st.sampled_from([("encoder",), ("decoder",), None, ("decoder", "encoder")]))
    if kind == "input":
        return kind, Address((Segment(stack), Segment(("input",))))
    sel = draw(layers)
    stacks = stack or ("encoder", "decoder")
    subs = sorted(set.intersection(*(set(vocabulary().sublayers(s)) for s in stacks)))
    if kind == "sublayer" and draw(st.booleans()):
        return kind, Address((Segment(stack, sel),))
    sub = draw(st.one_of(st.none(), st.lists(st.sampled_from(subs), min_size=1, max_size=2, unique=True).map(tuple)))
    if kind == "sublayer":
        return kind, Address((Segment(stack, sel), Segment(sub)))
    chosen = sub or tuple(subs)
    projs = sorted(set().union(*(vocabulary().projections(None, s) for s in chosen)))
    proj = draw(st.one_of(st.none(), st.lists(st.sampled_from(projs), min_size=1, max_size=2, unique=True).map(tuple)))
    return kind, Address((Segment(stack, sel), Segment(sub), Segment(proj)))


def _value_for(spec):
    if spec.choices:
        return st.sampled_from(list(spec.choices) + sorted(spec.aliases))
    if spec.kind == "bool":
        return st.booleans()
    if spec.kind in ("int", "int?"):
        low = int(spec.min) if spec.min is not None else -1000
        return st.integers(low, low + 512)
    low = spec.min if spec.min is not None else -1e6
    high = spec.max if spec.max is not None else 1e6
    return st.floats(low, high, allow_nan=False)


@st.composite
def params_for(draw, params_cls, lets):
    out = []
    for key, spec in schema(params_cls).items():
        if not draw(st.booleans()):
            continue
        if spec.kind in ("int", "int?") and lets and draw(st.integers(0, 4)) == 0:
            value = Ref("r")  # lets always bind r to a valid int
        else:
            value = draw(_value_for(spec))
        out.append(Param(key, value))
    # drop the keys a cross-field rule blames (gate_r without a matrix gate, heads not dividing r)
    specs_ = schema(params_cls)
    while True:
        values = {p.key: specs_[p.key].coerce(96 if isinstance(p.value, Ref) else p.value)[0] for p in out}
        blamed = {key for key, _ in params_cls(**values).problems()}
        if not blamed:
            return tuple(out)
        kept = [p for p in out if p.key not in blamed]
        if len(kept) == len(out):  # a default is blamed (n=4 must divide r): drop the other side
            kept = [p for p in out if p.key not in ("r", "gate_r", "granularity")]
            if len(kept) == len(out):
                return ()
        out = kept


@st.composite
def statements(draw, lets):
    method = draw(st.sampled_from([None] + sorted(METHOD_PARAMS)))
    kinds = METHOD_PARAMS[method][1] if method else ("sublayer", "projection")
    _, address = draw(site_address(kinds))
    params_cls = METHOD_PARAMS[method or "adapter"][0]
    params = draw(params_for(params_cls, lets)) if method != "none" else ()
    return Statement(address, method, params)


train_targets = st.one_of(
    st.sampled_from([Address((Segment(("projector",)),)), Address((Segment(("all",)),))]),
    st.builds(lambda stack, sel, part: Address((Segment(stack, sel), Segment(part))),
              st.sampled_from([("encoder",), None, ("decoder", "encoder")]), layers,
              st.sampled_from([("layernorm",), ("bias",), ("bias", "layernorm")])),
    st.builds(lambda sub, part: Address((Segment(("decoder",)), Segment(sub), Segment(part))),
              st.sampled_from([("ffn",), ("cross_attn", "self_attn"), None]), st.sampled_from([("layernorm",), ("bias",)])),
)


@st.composite
def specs(draw, *, with_extends=False):
    """A Spec (syntactically and mostly semantically valid; filter with validate() if needed)."""
    use_lets = draw(st.booleans())
    lets = ()
    if use_lets:
        lets = (Param("r", 96),) + tuple(Param(n, draw(LET_VALUES)) for n in
                                         draw(st.lists(names.filter(lambda n: n != "r"), max_size=2, unique=True)))
    projector = draw(st.one_of(st.none(), params_for(ProjectorParams, ()).map(Projector)))
    return Spec(backbone=draw(st.one_of(st.none(), paths)),
                extends=draw(st.one_of(st.none(), paths)) if with_extends else None,
                lets=lets, projector=projector,
                train=tuple(draw(st.lists(train_targets, max_size=3))),
                statements=tuple(draw(st.lists(statements(lets), max_size=5))))


__all__ = ["names", "specs", "statements", "string"]
