"""Address semantics, in one place for every stage: what an address names and whether it is valid.

An address names *sites*: ``(stack, layer, sublayer, projection)`` for sublayer and projection
sites (projection ``None`` for a sublayer site), ``(stack, None, "input", None)`` for a stack's
input.  A sublayer site and the projection sites inside it are different sites: ``encoder.ffn``
and ``encoder.ffn.in`` never override each other.

The role names themselves are not written here.  They are data of the backbone families
(:class:`vlsurgery.profiles.Roles`): without a backbone an address may use any role of any
registered family (:func:`vlsurgery.profiles.vocabulary`), on a backbone exactly that backbone's
roles (``profile.roles``).  Only the closed words of the language live here: ``input``, and the
``train`` endings ``layernorm``/``bias`` and words ``projector``/``all``.

Who asks what: validation (:func:`check_address`, :func:`check_train`; its statement index: :func:`rects`,
:func:`layer_overlap`, :func:`layer_covers`), the planner (:func:`select`, :func:`pick_layers`, :func:`train_rule`).

Whether two addresses share a site is decided exactly from the names, and from the layer
selections for every number of layers a stack may have (:func:`rects`: no loop over sizes); when
the answer depends on that number (``encoder[0:2]`` and ``encoder[-1]`` overlap only if the stack
has at most two layers) it is ``"maybe"``::

    >>> from vlsurgery.spec import parse
    >>> a, b = (s.target for s in parse("encoder[0:2].ffn: lite; encoder[-1].ffn: none").statements)
    >>> overlap(a, b)
    'maybe'
"""

from __future__ import annotations

from bisect import bisect_right

from vlsurgery.errors import Problem, check_name, choices, did_you_mean, nearest
from vlsurgery.profiles import Roles, vocabulary
from vlsurgery.spec.ir import Address, Index, LayerItem, Segment

INPUT = "input"
#: Last segments that only ``train`` accepts, and its one-word targets.
TRAIN_PARTS = ("bias", "layernorm")
TRAIN_WORDS = ("all", "projector")
TRAIN_RULE = "a train target must be projector, all, or an address ending in layernorm or bias"


def kind(address: Address) -> str:
    """The kind of site an address names: ``sublayer``, ``projection`` or ``input``."""
    segs = address.segments
    if len(segs) >= 2 and segs[1].names == (INPUT,):
        return "input"
    return "projection" if len(segs) >= 3 else "sublayer"


def site_names(address: Address, roles: Roles | None = None) -> set[tuple]:
    """The ``(stack, sublayer, projection)`` triples an address names (layers aside)."""
    roles = roles or vocabulary()
    segs = address.segments
    stacks = [s for s in (segs[0].names or roles.stack_names()) if s in roles.stack_names()]
    if kind(address) == "input":
        return {(s, INPUT, None) for s in stacks}
    out = set()
    for stack in stacks:
        subs = roles.sublayers(stack)
        for sub in (segs[1].names if len(segs) > 1 and segs[1].names else subs):
            if sub not in subs:
                continue
            if len(segs) < 3:
                out.add((stack, sub, None))
            else:
                projs = roles.projections(stack, sub)
                out.update((stack, sub, p) for p in (segs[2].names or projs) if p in projs)
    return out


# --------------------------------------------------------------------------------------------
# layer selections


def pick_layers(items, n: int, stack: str, backbone: str) -> tuple[list[int] | None, str | None]:
    """The sorted layers a selection picks in a stack of ``n`` layers, or why it cannot."""
    if items is None:
        return list(range(n)), None
    chosen: list[int] = []
    where = f"{stack} of {backbone} has {n} layer{'s' if n != 1 else ''} (0..{n - 1}, or -{n}..-1)"
    for item in items:
        if isinstance(item, Index):
            if not -n <= item.value < n:
                return None, f"layer {item.value} is out of range: {where}"
            chosen.append(item.value % n)
            continue
        text = f"{'' if item.start is None else item.start}:{'' if item.stop is None else item.stop}"
        if any(b is not None and not -n <= b <= n for b in (item.start, item.stop)):
            return None, f"layer range [{text}] is out of range: {where}"
        picked = list(range(*slice(item.start, item.stop).indices(n)))
        if not picked:
            return None, f"layer range [{text}] selects no layer of {stack} ({n} layers)"
        chosen.extend(picked)
    return sorted(set(chosen)), None


INF = float("inf")


def rects(layers: tuple[LayerItem, ...] | None) -> list[tuple]:
    """A selection as rectangles ``(p_lo, p_hi, q_lo, q_hi)`` (inclusive; INF: unbounded) over p, a
    layer's position from the start, and q = n - p, from the end: in a stack of n layers it picks p
    when (p, n - p) lies in one.  ``[2]``: p = 2; ``[-1]``: q = 1; ``[1:-1]``: p >= 1 and q >= 2."""
    if layers is None:
        return [(0, INF, 1, INF)]
    out = []
    for item in layers:
        if isinstance(item, Index):
            v = item.value
            r = (v, v, 1, INF) if v >= 0 else (0, INF, -v, -v)
        else:
            s, t = item.start, item.stop
            r = (s if s is not None and s >= 0 else 0, t - 1 if t is not None and t >= 0 else INF,
                 1 - t if t is not None and t < 0 else 1, -s if s is not None and s < 0 else INF)
        if r[0] <= r[1] and r[2] <= r[3]:
            out.append(r)
    return _merged(out)


def _merged(rs: list[tuple]) -> list[tuple]:
    """Rectangles of one extent on an axis that touch on the other, joined (``[0,1,2]``: one)."""
    for axis, other in ((0, 2), (2, 0)):
        out: list[list] = []
        for r in sorted(rs, key=lambda r: (r[other], r[other + 1], r[axis], r[axis + 1])):
            if out and out[-1][other:other + 2] == list(r[other:other + 2]) and r[axis] <= out[-1][axis + 1] + 1:
                out[-1][axis + 1] = max(out[-1][axis + 1], r[axis + 1])
            else:
                out.append(list(r))
        rs = [tuple(x) for x in out]
    return rs


def min_count(layers) -> int:
    """The fewest layers a stack needs for every index of a selection to exist."""
    return max([1] + [(v + 1 if v >= 0 else -v) for v in (i.value for i in layers or () if isinstance(i, Index))])


def layer_overlap(a, b) -> str:
    """``yes``/``no``/``maybe``: do two selections share a layer in every / no / some stack size that
    both allow?  Each pair of rectangles meets on the stack sizes p + q of their intersection."""
    m = max(min_count(a), min_count(b))
    spans = []
    for r in rects(a):
        for s in rects(b):
            p0, p1, q0, q1 = max(r[0], s[0]), min(r[1], s[1]), max(r[2], s[2]), min(r[3], s[3])
            if p0 <= p1 and q0 <= q1 and p1 + q1 >= m:
                spans.append((max(p0 + q0, m), p1 + q1))
    joined = _merged([(lo, hi, 0, 0) for lo, hi in spans])
    return "no" if not joined else "yes" if joined[0][:2] == (m, INF) else "maybe"


def layer_covers(outer, inner) -> bool:
    """True if ``outer`` picks every layer ``inner`` picks, in every stack size both allow: what is
    left of ``inner``'s rectangles without ``outer``'s has no point of such a size (two sizes tried first)."""
    m, cut, own = max(min_count(outer), min_count(inner)), rects(outer), rects(inner)
    for n in (m, 2 * max([0] + [v for r in cut + own for v in r if v < INF]) + 3):
        ends = _at(cut, n)
        starts = [e[0] for e in ends]
        if any((k := bisect_right(starts, lo) - 1) < 0 or ends[k][1] < hi for lo, hi, _, _ in _at(own, n)):
            return False
    for r in own:
        pieces = [r] if r[1] + r[3] >= m else []
        for c in cut:
            pieces = [piece for x in pieces for piece in _minus(x, c) if piece[1] + piece[3] >= m]
        if pieces:
            return False
    return True


def _at(rs, n: int) -> list[tuple]:
    """The layers rectangles pick in a stack of n: sorted, disjoint intervals ``(first, last, 0, 0)``."""
    spans = [(max(r[0], n - r[3]), min(r[1], n - r[2]), 0, 0) for r in rs]
    return _merged([x for x in spans if x[0] <= x[1]])


def _minus(r, c) -> list[tuple]:
    """Rectangle ``r`` without rectangle ``c``: at most four rectangles."""
    if c[0] > r[1] or c[1] < r[0] or c[2] > r[3] or c[3] < r[2]:
        return [r]
    p0, p1 = max(r[0], c[0]), min(r[1], c[1])
    out = [(r[0], c[0] - 1, r[2], r[3]), (c[1] + 1, r[1], r[2], r[3]),
           (p0, p1, r[2], c[2] - 1), (p0, p1, c[3] + 1, r[3])]
    return [x for x in out if x[0] <= x[1] and x[2] <= x[3] and max(x[0], x[2]) < INF]


# --------------------------------------------------------------------------------------------
# how statements relate (without a backbone)


def overlap(a: Address, b: Address) -> str:
    """``"yes"`` if two addresses share a site on every backbone, ``"no"`` on none, else ``"maybe"``."""
    if kind(a) != kind(b) or not site_names(a) & site_names(b):
        return "no"
    la, lb = a.segments[0].layers, b.segments[0].layers
    return "yes" if la is None and lb is None else layer_overlap(la, lb)


def covers(a: Address, b: Address) -> bool:
    """True if every site of ``b`` is a site of ``a``, whatever the number of layers."""
    names = site_names(b)
    if kind(a) != kind(b) or not names or not names <= site_names(a):
        return False
    return a.segments[0].layers is None or layer_covers(a.segments[0].layers, b.segments[0].layers)


# --------------------------------------------------------------------------------------------
# validity against a vocabulary


def check_address(address: Address, out: list[Problem], roles: Roles | None = None, *,
                  train_prefix: bool = False) -> bool:
    """Check the roles of a site address (or of a train target's part before layernorm/bias);
    every problem goes to ``out``.  ``roles``: a backbone's vocabulary, default every family's."""
    roles = roles or vocabulary()
    segs, ok = address.segments, True
    if len(segs) > 3:
        out.append(Problem(f"too many segments in address: {len(segs)}", segs[3].span,
                           expected="stack.sublayer.projection, e.g. decoder.cross_attn.v"))
        return False
    stack = segs[0]
    stack_names = roles.stack_names()
    for name in stack.names or ():
        hint = (f"an address starts with the stack: {stack_names[0]}.{name} or *.{name}"
                if name in roles.sublayers() + (INPUT,) else None)
        ok &= check_name(name, stack_names, "stack", stack.span, out,
                         expected=", ".join(stack_names) + ", * or {" + ",".join(stack_names) + "}",
                         extra_hint=hint)
    ok &= _check_layers(address, out)
    if len(segs) < 2 or not ok:
        return ok
    sub = segs[1]
    if sub.names and INPUT in sub.names:
        return _check_input(address, out, train_prefix)
    stacks = stack.names or stack_names
    valid_subs = sorted({s for st in stacks for s in roles.sublayers(st)})
    for name in sub.names or ():
        if name in roles.sublayers() and name not in valid_subs:
            out.append(Problem(f"the {'/'.join(stacks)} stack has no {name}", sub.span, expected=choices(valid_subs)))
            ok = False
        else:
            expected = choices(valid_subs + ([] if train_prefix else [INPUT]) + ["*"])
            ok &= check_name(name, roles.sublayers() + (INPUT,), "sublayer", sub.span, out, expected=expected)
    if len(segs) < 3 or not ok:
        return ok
    valid_projs = sorted({p for st in stacks for s in (sub.names or valid_subs) for p in roles.projections(st, s)})
    for name in segs[2].names or ():
        if name in roles.projections() and name not in valid_projs:
            subs = [s for s in (sub.names or valid_subs)]
            out.append(Problem(f"{'/'.join(subs)} has no projection '{name}'", segs[2].span,
                               expected=choices(valid_projs + ["*"])))
            ok = False
        else:
            ok &= check_name(name, valid_projs, "projection", segs[2].span, out, expected=choices(valid_projs + ["*"]))
    return ok


def _check_layers(address: Address, out: list[Problem]) -> bool:
    """Layer selections: only on the stack segment; warn about repeats, reject empty ranges."""
    segs, ok, seen = address.segments, True, set()
    for item in segs[0].layers or ():
        if isinstance(item, Index):
            if item.value in seen:
                out.append(Problem(f"layer {item.value} is selected twice", segs[0].span, severity="warning"))
            seen.add(item.value)
        elif item.start is not None and item.stop is not None:
            if (item.start < 0) == (item.stop < 0) and item.start >= item.stop:
                out.append(Problem(f"layer range [{item.start}:{item.stop}] selects no layers", segs[0].span,
                                   expected="start < stop (the stop is exclusive, as in Python)"))
    for seg in segs[1:]:
        if seg.layers is not None:
            from vlsurgery.spec.printer import address_text

            moved = Address((Segment(segs[0].names, seg.layers),) + tuple(Segment(s.names) for s in segs[1:]))
            out.append(Problem("layer selections are only allowed on the stack segment", seg.span,
                               expected=f"the selection right after the stack: {address_text(moved)}"))
            ok = False
    return ok


def _check_input(address: Address, out: list[Problem], train_prefix: bool) -> bool:
    segs = address.segments
    if segs[1].names != (INPUT,):
        out.append(Problem("'input' cannot be combined with sublayers in one alternation", segs[1].span,
                           expected="input alone, e.g. encoder.input"))
        return False
    if train_prefix or len(segs) > 2:
        out.append(Problem("a stack's input has no parts", (segs[2] if len(segs) > 2 else segs[1]).span,
                           expected="an address ending in input, e.g. encoder.input"))
        return False
    if segs[0].layers is not None:
        out.append(Problem("a stack's input has no layers", segs[0].span, expected="encoder.input without [..]"))
        return False
    return True


def train_rule(address: Address) -> tuple[str | None, Problem | None]:
    """What a ``train`` target is: ``("word", None)`` for ``projector``/``all``, ``("parts", None)``
    for an address ending in layernorm/bias, or ``(None, problem)``: the rule and its message."""
    segs = address.segments
    if len(segs) == 1 and segs[0].names and len(segs[0].names) == 1 and segs[0].names[0] in TRAIN_WORDS:
        if segs[0].layers is not None:
            return None, Problem(f"'{segs[0].names[0]}' takes no layer selection", segs[0].span)
        return "word", None
    last = segs[-1]
    if last.names is None or not set(last.names) <= set(TRAIN_PARTS) or len(segs) == 1:
        name = (last.names or ("*",))[0] if len(segs) > 1 else ",".join(last.names or ("*",))
        return None, Problem(TRAIN_RULE, last.span if len(segs) > 1 else address.span,
                             expected="e.g. projector, all, encoder.layernorm, *.bias, encoder.self_attn.layernorm",
                             hint=did_you_mean(name, TRAIN_PARTS + TRAIN_WORDS))
    return "parts", None


def check_train(address: Address, out: list[Problem], roles: Roles | None = None) -> None:
    """Check a ``train`` target: the rule, then the roles of the part before layernorm/bias."""
    what, problem = train_rule(address)
    if problem is not None:
        out.append(problem)
    if what != "parts":
        return
    segs = address.segments
    last = segs[-1]
    if last.layers is not None:
        out.append(Problem("layer selections are only allowed on the stack segment", last.span))
    prefix = Address(segs[:-1], span=address.span)
    if check_address(prefix, out, roles, train_prefix=True) and len(segs) == 4 and "layernorm" in last.names:
        out.append(Problem("a projection has no layer norm", last.span, expected="bias after a projection"))


# --------------------------------------------------------------------------------------------
# on one backbone


def role_names(roles: Roles) -> list[str]:
    """Every address shape a vocabulary allows, in model order (for 'did you mean')."""
    out = []
    for stack, subs in roles.stacks:
        if stack in roles.inputs:
            out.append(f"{stack}.{INPUT}")
        for sub, projs in subs:
            out.append(f"{stack}.{sub}")
            out.extend(f"{stack}.{sub}.{p}" for p in projs)
    return out


def select(address: Address, roles: Roles, layers: dict[str, int], backbone: str,
           what: str = "statement") -> tuple[list[tuple], Problem | None]:
    """The sites an address names on a backbone, ``(stack, layer, sublayer, projection)`` in model
    order (``layers``: the stacks' layer counts, in model order), or the problem why it names none:
    a layer out of range, a misplaced ``input``, or roles the backbone lacks (with its valid roles
    and the nearest one)."""
    from vlsurgery.spec.printer import address_text

    segs, span = address.segments, address.span
    found: list[tuple] = []
    reasons = [f"{backbone} has no stack '{n}' (stacks: {', '.join(layers)})"
               for n in (segs[0].names or ()) if n not in layers]
    for stack in [s for s in layers if s in (segs[0].names or layers)]:
        if kind(address) == "input":
            problem = (f"the input of a stack has no layers; write {stack}.input" if segs[0].layers is not None
                       else f"{stack}.input has no projections" if len(segs) > 2
                       else None if stack in roles.inputs
                       else f"{backbone} takes no prefix tokens at any input" if not roles.inputs
                       else f"tokens can only be prepended to the {' or '.join(roles.inputs)}'s input (write "
                            f"{roles.inputs[0]}.input); the {stack}'s input is the text being generated")
            if problem:
                return [], Problem(f"{what}: {problem}", span)
            found.append((stack, None, INPUT, None))
            continue
        picked, problem = pick_layers(segs[0].layers, layers[stack], stack, backbone)
        if problem:
            return [], Problem(problem, span)
        subs = roles.sublayers(stack)
        for sub in (segs[1].names if len(segs) >= 2 and segs[1].names else subs):
            if sub not in subs:
                reasons.append(f"{stack} has no {sub} (its sublayers: {', '.join(subs)})")
            elif len(segs) < 3:
                found.extend((stack, i, sub, None) for i in picked)
            else:
                projs = roles.projections(stack, sub)
                for proj in segs[2].names or projs:
                    if proj not in projs:
                        reasons.append(f"{stack}.{sub} has no projection '{proj}' (its projections: {', '.join(projs)})")
                    else:
                        found.extend((stack, i, sub, proj) for i in picked)
    if found:
        return found, None
    text = address_text(address)
    valid = role_names(roles)
    guess = nearest(_without_layers(address), valid)
    return [], Problem(f"{what} `{text}` matches no site of {backbone}: "
                       + ("; ".join(dict.fromkeys(reasons)) or "nothing there"), span,
                       expected="an address of " + ", ".join(valid[:8]) + (", ..." if len(valid) > 8 else ""),
                       hint=f"did you mean `{guess}`?" if guess else None)


def _without_layers(address: Address) -> str:
    from vlsurgery.spec.printer import address_text

    return address_text(Address(tuple(Segment(s.names) for s in address.segments)))
