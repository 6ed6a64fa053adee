"""Spec-level validation: every problem that can be found without a backbone, all at once.

Checked here: method names and the site kinds they may be placed on; parameter keys (for a
statement without a method: keys valid for some method that fits the site, checked exactly at
resolution), types, ranges, choices, duplicate keys; cross-field rules (``heads`` divides ``r``)
where every value is known, i.e. where no earlier statement may merge into this one; address
roles and layer selections (:mod:`vlsurgery.spec.addresses`, against the roles of every backbone
family); ``$refs`` to undefined lets (unless an ``extends`` base may define
them); lets, the projector and ``train`` targets.  Warnings: statements that a later one fully
overrides, layers selected twice, unused lets.
"""

from __future__ import annotations

from vlsurgery.errors import Problem, check_name, choices, did_you_mean
from vlsurgery.methods.params import DEFAULT_METHOD, METHOD_PARAMS, ProjectorParams, schema
from vlsurgery.spec import addresses
from vlsurgery.spec.addresses import kind
from vlsurgery.spec.ir import Ref, Spec, Statement

_UNKNOWN = object()  # a $ref whose value is not known yet (an extends base may bind it)


def _literal(value, lets, strict):
    """The value of a param: literals as they are, $refs by their let (``_UNKNOWN`` if unbound)."""
    if not isinstance(value, Ref):
        return value, None
    if value.name in lets:
        return lets[value.name], None
    if not strict:
        return _UNKNOWN, None
    return _UNKNOWN, Problem(f"undefined reference ${value.name}", value.span,
                             expected=choices(["a let bound in this spec or a base it extends"]),
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
        if not check_name(p.key, specs, "parameter", span, out, expected=choices(sorted(specs)),
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
    address_ok = addresses.check_address(stmt.target, out)
    site_kind = kind(stmt.target)
    method = stmt.method
    if method is not None and not check_name(method, METHOD_PARAMS, "method", stmt.method_span or stmt.span, out,
                                              expected=choices(sorted(METHOD_PARAMS))):
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
                               p.span, expected=choices(sorted(specs)), hint=did_you_mean(p.key, specs)))
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
        addresses.check_train(address, out)
    overlaps = addresses.earlier_overlaps(spec.statements)
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
            if replaces and addresses.covers(later.target, stmt.target):
                where = later.span or "a later statement"
                out.append(Problem(f"this statement has no effect: every site it names is "
                                   f"{'cleared' if later.method == 'none' else 'replaced'} by {where}",
                                   stmt.span, severity="warning"))
                break
    return out


def _position(problem: Problem):
    s = problem.span
    return (0, str(s.source), s.line, s.column) if s else (1, "", 0, 0)
