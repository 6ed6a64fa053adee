"""Spec-level validation: every problem that can be found without a backbone, all at once.

Checked here: method names and the site kinds they may be placed on; parameter keys (for a
statement without a method: keys valid for some method that fits the site, checked exactly at
resolution), types, ranges, choices, duplicate keys; cross-field rules (``heads`` divides ``r``)
where every value is known, i.e. where no earlier statement may merge into this one; address
roles and layer selections; ``$refs`` to undefined lets (unless an ``extends`` base may define
them); lets, the projector and ``train`` targets.  Warnings: statements that a later one fully
overrides, layers selected twice, unused lets.
"""

from __future__ import annotations

from vlsurgery.errors import Problem, did_you_mean
from vlsurgery.methods.params import DEFAULT_METHOD, METHOD_PARAMS, ProjectorParams, schema
from vlsurgery.spec import addresses as roles
from vlsurgery.spec.addresses import kind
from vlsurgery.spec.ir import Address, Index, Range, Ref, Segment, Spec, Statement
from vlsurgery.spec.printer import address_text

_UNKNOWN = object()  # a $ref whose value is not known yet (an extends base may bind it)


def _choices(names) -> str:
    names = list(names)
    if not names:
        return "no parameters"
    return names[0] if len(names) == 1 else "one of: " + ", ".join(names)


def _check_name(name, valid, what, span, out, *, expected=None, extra_hint=None) -> bool:
    if name in valid:
        return True
    hint = did_you_mean(name, valid) or extra_hint
    out.append(Problem(f"unknown {what} '{name}'", span, expected=expected or _choices(valid), hint=hint))
    return False


def _check_layers(segment, out):
    seen = set()
    for item in segment.layers or ():
        if isinstance(item, Index):
            if item.value in seen:
                out.append(Problem(f"layer {item.value} is selected twice", segment.span, severity="warning"))
            seen.add(item.value)
        elif isinstance(item, Range) and item.start is not None and item.stop is not None:
            same_sign = (item.start < 0) == (item.stop < 0)
            if same_sign and item.start >= item.stop:
                out.append(Problem(f"layer range [{item.start}:{item.stop}] selects no layers", segment.span,
                                   expected="start < stop (the stop is exclusive, as in Python)"))


def _check_address(address: Address, out: list[Problem], *, train_prefix=False) -> bool:
    """Check the roles of a site address (or the part of a train target before layernorm/bias)."""
    segs, ok = address.segments, True
    if len(segs) > 3:
        out.append(Problem(f"too many segments in address: {len(segs)}", segs[3].span,
                           expected="stack.sublayer.projection, e.g. decoder.cross_attn.v"))
        return False
    stack = segs[0]
    for name in stack.names or ():
        hint = (f"an address starts with the stack: encoder.{name} or *.{name}"
                if name in roles.SUBLAYERS + (roles.INPUT,) else None)
        ok &= _check_name(name, roles.STACKS, "stack", stack.span, out,
                          expected="encoder, decoder, * or {encoder,decoder}", extra_hint=hint)
    _check_layers(stack, out)
    for seg in segs[1:]:
        if seg.layers is not None:
            moved = Address((Segment(stack.names, seg.layers),) + tuple(Segment(s.names) for s in segs[1:]))
            out.append(Problem("layer selections are only allowed on the stack segment", seg.span,
                               expected=f"the selection right after the stack: {address_text(moved)}"))
            ok = False
    if len(segs) < 2 or not ok:
        return ok
    sub = segs[1]
    if sub.names and roles.INPUT in sub.names:
        if sub.names != (roles.INPUT,):
            out.append(Problem("'input' cannot be combined with sublayers in one alternation", sub.span,
                               expected="input alone, e.g. encoder.input"))
            return False
        if train_prefix or len(segs) > 2:
            out.append(Problem("a stack's input has no parts", (segs[2] if len(segs) > 2 else sub).span,
                               expected="an address ending in input, e.g. encoder.input"))
            return False
        if stack.layers is not None:
            out.append(Problem("a stack's input has no layers", stack.span, expected="encoder.input without [..]"))
            return False
        return True
    stacks = stack.names or roles.STACKS
    valid_subs = sorted({s for st in stacks for s in roles.STACK_SUBLAYERS.get(st, ())})
    for name in sub.names or ():
        if name in roles.SUBLAYERS and name not in valid_subs:
            out.append(Problem(f"the {'/'.join(stacks)} stack has no {name}", sub.span, expected=_choices(valid_subs)))
            ok = False
        else:
            expected = _choices(valid_subs + ([] if train_prefix else [roles.INPUT]) + ["*"])
            ok &= _check_name(name, roles.SUBLAYERS + (roles.INPUT,), "sublayer", sub.span, out, expected=expected)
    if len(segs) < 3 or not ok:
        return ok
    subs = [s for s in (sub.names or valid_subs) if s in roles.PROJECTIONS]
    valid_projs = sorted({p for s in subs for p in roles.PROJECTIONS[s]})
    for name in segs[2].names or ():
        if name in roles.ALL_PROJECTIONS and name not in valid_projs:
            out.append(Problem(f"{'/'.join(subs)} has no projection '{name}'", segs[2].span,
                               expected=_choices(valid_projs + ["*"])))
            ok = False
        else:
            ok &= _check_name(name, valid_projs, "projection", segs[2].span, out,
                              expected=_choices(valid_projs + ["*"]))
    return ok


def _check_train(address: Address, out: list[Problem]):
    segs = address.segments
    if len(segs) == 1 and segs[0].names and len(segs[0].names) == 1 and segs[0].names[0] in roles.TRAIN_WORDS:
        if segs[0].layers is not None:
            out.append(Problem(f"'{segs[0].names[0]}' takes no layer selection", segs[0].span))
        return
    last = segs[-1]
    bad = last.names is None or not set(last.names) <= set(roles.TRAIN_PARTS) or len(segs) == 1
    if bad:
        name = (last.names or ("*",))[0] if len(segs) > 1 else ",".join(last.names or ("*",))
        hint = did_you_mean(name, roles.TRAIN_PARTS + roles.TRAIN_WORDS)
        out.append(Problem("a train target must be projector, all, or an address ending in layernorm or bias",
                           last.span if len(segs) > 1 else address.span,
                           expected="e.g. projector, all, encoder.layernorm, *.bias, encoder.self_attn.layernorm",
                           hint=hint))
        return
    if len(segs) > 1 and last.layers is not None:
        out.append(Problem("layer selections are only allowed on the stack segment", last.span))
    prefix = Address(segs[:-1], span=address.span)
    if _check_address(prefix, out, train_prefix=True) and len(segs) == 4 and "layernorm" in last.names:
        out.append(Problem("a projection has no layer norm", last.span, expected="bias after a projection"))


def _literal(value, lets, strict):
    """The value of a param: literals as they are, $refs by their let (``_UNKNOWN`` if unbound)."""
    if not isinstance(value, Ref):
        return value, None
    if value.name in lets:
        return lets[value.name], None
    if not strict:
        return _UNKNOWN, None
    return _UNKNOWN, Problem(f"undefined reference ${value.name}", value.span,
                             expected=_choices(["a let bound in this spec or a base it extends"]),
                             hint=did_you_mean(value.name, lets) or (f"bind it with: let {value.name} = ..."))


def first_of_each(items, out: list[Problem], what: str, expected: str) -> list:
    """``items`` (Params) without repeated keys; each repeat becomes a Problem pointing at the first."""
    first: dict = {}
    kept = []
    for item in items:
        if item.key in first:
            out.append(Problem(what.format(key=item.key), item.span, expected=expected,
                               hint=f"the first is at {first[item.key]}" if first[item.key] else None))
            continue
        first[item.key] = item.span
        kept.append(item)
    return kept


def check_params(params, specs: dict, what: str, lets: dict, strict: bool, out: list[Problem]) -> dict | None:
    """Check keys and values against a schema; the coerced values, or None if any is unknown."""
    values, complete = {}, True
    for p in first_of_each(params, out, "duplicate parameter '{key}'", "each key once per statement"):
        span = p.span
        if not _check_name(p.key, specs, "parameter", span, out, expected=_choices(sorted(specs)),
                           extra_hint=None):
            out[-1] = Problem(f"unknown parameter '{p.key}' for {what}", span, out[-1].expected, out[-1].hint)
            complete = False
            continue
        value, problem = _literal(p.value, lets, strict)
        if problem:
            out.append(problem)
        if value is _UNKNOWN:
            complete = False
            continue
        coerced, complaint = specs[p.key].coerce(value)
        if complaint:
            via = f" (from ${p.value.name})" if isinstance(p.value, Ref) else ""
            out.append(Problem(complaint + via, span, expected=specs[p.key].describe(),
                               hint=did_you_mean(value, specs[p.key].choices or ()) if isinstance(value, str) else None))
            complete = False
        else:
            values[p.key] = coerced
    return values if complete else None


def _cross_field(params_cls, values, params, span, out):
    try:
        hp = params_cls(**values)
    except TypeError:  # pragma: no cover - keys were checked against the schema
        return
    spans = {p.key: p.span for p in params}
    for key, message in hp.problems():
        out.append(Problem(message, spans.get(key, span)))


def _check_statement(stmt: Statement, index, earlier, lets, strict, out):
    address_ok = _check_address(stmt.target, out)
    site_kind = kind(stmt.target)
    method = stmt.method
    if method is not None and not _check_name(method, METHOD_PARAMS, "method", stmt.method_span or stmt.span, out,
                                              expected=_choices(sorted(METHOD_PARAMS))):
        return
    if method is None:
        fitting = [m for m, (_, kinds) in METHOD_PARAMS.items() if site_kind in kinds and m != "none"]
        specs: dict = {}
        for m in fitting:
            for key, spec in schema(METHOD_PARAMS[m][0]).items():
                specs.setdefault(key, []).append(spec)
        _check_methodless(stmt, specs, site_kind, lets, strict, out)
        if address_ok and not earlier and strict and site_kind not in METHOD_PARAMS[DEFAULT_METHOD][1]:
            out.append(Problem(f"no method given, and the default method '{DEFAULT_METHOD}' cannot be placed on "
                               f"{_kind_words(site_kind)}", stmt.span, expected="a method for these sites, e.g. "
                               + ("prompt" if site_kind == "input" else "lora")))
        return
    params_cls, kinds = METHOD_PARAMS[method]
    if address_ok and site_kind not in kinds:
        out.append(Problem(f"method '{method}' cannot be placed on {_kind_words(site_kind)}", stmt.target.span,
                           expected=" or ".join(_kind_words(k) for k in kinds)))
    values = check_params(stmt.params, schema(params_cls), f"method '{method}'", lets, strict, out)
    if values is not None and not earlier and strict:  # with a base still to merge, it may merge in
        _cross_field(params_cls, values, stmt.params, stmt.span, out)


def _kind_words(site_kind: str) -> str:
    return {"sublayer": "sublayers (e.g. encoder.ffn)", "projection": "projections (e.g. encoder.self_attn.q)",
            "input": "a stack's input (e.g. encoder.input)"}[site_kind]


def _check_methodless(stmt, specs, site_kind, lets, strict, out):
    for p in first_of_each(stmt.params, out, "duplicate parameter '{key}'", "each key once per statement"):
        if p.key not in specs:
            out.append(Problem(f"unknown parameter '{p.key}' (no method that fits {_kind_words(site_kind)} has it)",
                               p.span, expected=_choices(sorted(specs)), hint=did_you_mean(p.key, specs)))
            continue
        value, problem = _literal(p.value, lets, strict)
        if problem:
            out.append(problem)
        if value is _UNKNOWN:
            continue
        complaints = [s.coerce(value)[1] for s in specs[p.key]]
        if all(complaints):
            expected = " or ".join(dict.fromkeys(s.describe() for s in specs[p.key]))
            out.append(Problem(complaints[0], p.span, expected=expected))


def _check_lets(spec: Spec, strict: bool, out) -> dict:
    lets = {}
    for let in first_of_each(spec.lets, out, "'{key}' is bound twice", "one let per name"):
        if isinstance(let.value, Ref):
            out.append(Problem(f"let {let.key} refers to ${let.value.name}; a let value must be a literal",
                               let.value.span or let.span, expected="a number, true/false, a name or a quoted string"))
            continue
        lets[let.key] = let.value
    return lets


def _used_refs(spec: Spec) -> set[str]:
    params = [p for s in spec.statements for p in s.params] + list(spec.projector.params if spec.projector else ())
    return {p.value.name for p in params if isinstance(p.value, Ref)}


def validate(spec: Spec, *, strict_refs: bool | None = None, where: dict | None = None) -> list[Problem]:
    """Every problem of a spec, errors and warnings, in source order.

    ``strict_refs`` (default: the spec has no ``extends``) makes a ``$ref`` to an unbound let an
    error; with an ``extends`` base still to merge, the base may bind it.  ``where`` may give the
    spans of the ``backbone`` and ``extends`` declarations (the IR keeps none).
    """
    strict = spec.extends is None if strict_refs is None else strict_refs
    out: list[Problem] = []
    for name in ("backbone", "extends"):
        value = getattr(spec, name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            out.append(Problem(f"{name} must name something, found {value!r}", (where or {}).get(name),
                               expected="a name or a path"))
    lets = _check_lets(spec, strict, out)
    if spec.projector is not None:
        values = check_params(spec.projector.params, schema(ProjectorParams), "the projector", lets, strict, out)
        if values is not None:
            _cross_field(ProjectorParams, values, spec.projector.params, spec.projector.span, out)
    for address in spec.train:
        _check_train(address, out)
    overlaps = roles.earlier_overlaps(spec.statements)
    for i, stmt in enumerate(spec.statements):
        _check_statement(stmt, i, overlaps[i], lets, strict, out)
    out += _overridden(spec.statements)
    if strict:
        unused = set(lets) - _used_refs(spec)
        out += [Problem(f"let {p.key} is never used", p.span, severity="warning")
                for p in spec.lets if p.key in unused]
    return sorted(out, key=_position)


def _overridden(statements) -> list[Problem]:
    out = []
    for j, stmt in enumerate(statements):
        for later in statements[j + 1:]:
            replaces = later.method == "none" or (later.method is not None and stmt.method is not None
                                                   and later.method != stmt.method)
            if replaces and roles.covers(later.target, stmt.target):
                where = later.span or "a later statement"
                out.append(Problem(f"this statement has no effect: every site it names is "
                                   f"{'cleared' if later.method == 'none' else 'replaced'} by {where}",
                                   stmt.span, severity="warning"))
                break
    return out


def _position(problem: Problem):
    s = problem.span
    return (0, str(s.source), s.line, s.column) if s else (1, "", 0, 0)
