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

from bisect import bisect_left, bisect_right

from vlsurgery import caches
from vlsurgery.errors import Problem, check_name, choices, did_you_mean
from vlsurgery.methods.params import DEFAULT_METHOD, METHOD_PARAMS, ProjectorParams, schema
from vlsurgery.spec import addresses
from vlsurgery.spec.addresses import INF, INPUT, kind, layer_covers, layer_overlap, rects, site_names
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


def _check_statement(stmt: Statement, index, earlier, lets, strict, out, no_method=None):
    address_ok = addresses.check_address(stmt.target, out)
    site_kind = kind(stmt.target)
    method = stmt.method
    if method is not None and not check_name(method, METHOD_PARAMS, "method", stmt.method_span or stmt.span, out,
                                              expected=choices(sorted(METHOD_PARAMS))):
        return
    if method is None:
        _check_methodless(stmt, _methodless_schema(site_kind), site_kind, lets, strict, out)
        if address_ok and no_method is not None:
            out.append(no_method)
        return
    params_cls, kinds = METHOD_PARAMS[method]
    if address_ok and site_kind not in kinds:
        out.append(Problem(f"method '{method}' cannot be placed on {_kind_words(site_kind)}", stmt.target.span,
                           expected=" or ".join(_kind_words(k) for k in kinds)))
    values = check_params(stmt.params, schema(params_cls), f"method '{method}'", lets, strict, out)
    if values is not None and not earlier and strict:  # with a base still to merge, it may merge in
        _cross_field(params_cls, values, stmt.params, stmt.span, out)


@caches.memoize("spec.methodless_schema")
def _methodless_schema(site_kind: str) -> dict:
    """Key -> its specs in every method that fits ``site_kind``: what a statement without a method may set."""
    specs: dict = {}
    for m, (params_cls, kinds) in METHOD_PARAMS.items():
        if site_kind in kinds and m != "none":
            for key, spec in schema(params_cls).items():
                specs.setdefault(key, []).append(spec)
    return specs


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
    overlaps = Overlaps(spec.statements)
    no_method = _without_method(spec.statements, strict)
    for i, stmt in enumerate(spec.statements):
        _check_statement(stmt, i, overlaps.count[i], lets, strict, out, no_method.get(i))
    out += _overridden(spec.statements, overlaps)
    if strict:
        unused = set(lets) - _used_refs(spec)
        out += [Problem(f"let {p.key} is never used", p.span, severity="warning")
                for p in spec.lets if p.key in unused]
    return sorted(out, key=_position)


def _overridden(statements, overlaps) -> list[Problem]:
    out = []
    for j, stmt in enumerate(statements):
        later = overlaps.first_replacing(j)
        if later is not None:
            where = statements[later].span or "a later statement"
            out.append(Problem(f"this statement has no effect: every site it names is "
                               f"{'cleared' if statements[later].method == 'none' else 'replaced'} by {where}",
                               stmt.span, severity="warning"))
    return out


def _without_method(statements, strict) -> dict[int, Problem]:
    """Statements without a method on a stack's input where no method remains, so that the default
    method would go there, which cannot.  An input has no layers, so the state of each input site
    (its method, or ``none``, and who set it) follows the statements exactly.  Without ``strict``
    (an ``extends`` base still to merge) a site this spec never touched may get a method from the
    base, so only a ``none`` written here counts."""
    state: dict[tuple, Statement] = {}
    found = {}
    for i, stmt in enumerate(statements):
        if kind(stmt.target) != "input" or stmt.target.segments[0].layers is not None:
            continue
        sites = sorted(site_names(stmt.target))
        if stmt.method is None:
            empty = sorted((t for t in sites if (state[t].method == "none" if t in state else strict)),
                           key=lambda t: t not in state)  # a site emptied by `none` explains best
            if empty and INPUT not in METHOD_PARAMS[DEFAULT_METHOD][1]:
                found[i] = _no_method_problem(stmt, empty[0], state.get(empty[0]))
        elif stmt.method == "none" or INPUT in METHOD_PARAMS.get(stmt.method, ((), ()))[1]:
            state.update((t, stmt) for t in sites)
    return found


def _no_method_problem(stmt, site, remover) -> Problem:
    what = f"no method given, and the default method '{DEFAULT_METHOD}' cannot be placed on {_kind_words('input')}"
    if remover is None:
        return Problem(what, stmt.span, expected="a method for these sites, e.g. prompt")
    return Problem(f"no method given, and {site[0]}.input has none here (the `none` at "
                   f"{remover.span or 'an earlier statement'} leaves it empty): {what[len('no method given, and '):]}",
                   stmt.span, expected="a method for these sites, e.g. prompt",
                   hint=f"name the method again, e.g. {site[0]}.input: prompt")


def _position(problem: Problem):
    s = problem.span
    return (0, str(s.source), s.line, s.column) if s else (1, "", 0, 0)


# --------------------------------------------------------------------------------------------
# which statements may override which, without comparing every pair

#: How many earlier statements :attr:`Overlaps.earlier` keeps per statement (the ``check`` summary
#: lists these and counts the rest).
LISTED = 20
_SHORT = 64  # a front/end interval this short is indexed position by position


class Overlaps:
    """For a list of statements: for each, the earlier statements it may override (the first
    :data:`LISTED` of them, ``(index, "yes"|"maybe")``, in :attr:`earlier`, how many in :attr:`count`)
    and the first later statement that makes it useless (:meth:`first_replacing`).

    Statements with one kind, one set of site names and one layer selection form a group (a
    thousand statements on ``encoder.ffn`` are one).  Groups meet only through a site name, and per
    site name an index of the groups' rectangles (:func:`~vlsurgery.spec.addresses.rects`) yields
    only groups whose layers can meet: ``encoder[-1]`` and ``encoder[-2]`` never reach the exact
    test.  The work is the statements plus the pairs of groups that may share a site;
    :attr:`comparisons` counts the exact tests::

        >>> from vlsurgery.spec import parse
        >>> o = Overlaps(parse("encoder.ffn: lite; encoder[-1].ffn: none; decoder.ffn: lite").statements)
        >>> o.earlier, o.count, o.first_replacing(0), o.comparisons
        ([[], [(0, 'yes')], []], [0, 1, 0], None, 3)
    """

    def __init__(self, statements, listed: int = LISTED):
        self.comparisons = 0
        self.group, keys, self.members = [], {}, []
        for i, stmt in enumerate(statements):
            a = stmt.target
            g = keys.setdefault((kind(a), frozenset(site_names(a)), a.segments[0].layers), len(keys))
            if g == len(self.members):
                self.members.append([])
            self.members[g].append(i)
            self.group.append(g)
        self.keys = list(keys)
        self.near: list[list] = [[] for _ in self.keys]  # group -> [(group, verdict)] that may share a site
        self._link()
        first: list[list] = [[] for _ in self.keys]
        seen = [0] * len(self.keys)
        self.earlier, self.count = [], []
        for i, g in enumerate(self.group):
            self.earlier.append(list(first[g]))
            self.count.append(seen[g])
            for h, verdict in self.near[g]:
                seen[h] += 1
                if len(first[h]) < listed:
                    first[h].append((i, verdict))
        self._covered: dict = {}
        self._replacers = self._later(statements)

    def _link(self):
        by_name: dict[tuple, list[int]] = {}
        for g, (_, names, _) in enumerate(self.keys):
            for name in names:
                by_name.setdefault(name, []).append(g)
        self._by_name = by_name
        found: list[set] = [set() for _ in self.keys]
        for groups in by_name.values():
            index = _Index([(g, rects(self.keys[g][2])) for g in groups])
            for g in groups:
                found[g].update(h for h in index.meeting(rects(self.keys[g][2])) if h >= g)
        for g, near in enumerate(found):
            for h in sorted(near):
                verdict = self._overlap(g, h)
                if verdict != "no":
                    self.near[g].append((h, verdict))
                    if h != g:
                        self.near[h].append((g, verdict))

    def _overlap(self, g, h) -> str:
        la, lb = self.keys[g][2], self.keys[h][2]
        if la is None and lb is None:
            return "yes"
        self.comparisons += 1
        return layer_overlap(la, lb)

    def _covers(self, h, g) -> bool:
        """Group ``h`` names every site of group ``g`` (:func:`~vlsurgery.spec.addresses.covers`)."""
        (kh, nh, lh), (kg, ng, lg) = self.keys[h], self.keys[g]
        if kh != kg or not ng or not ng <= nh:
            return False
        if lh is None:
            return True
        self.comparisons += 1
        return layer_covers(lh, lg)

    def _later(self, statements) -> list:
        """Per group, the statements that may replace another's sites: the ``none`` ones, and the
        ones with a method, each with the position of the next one with another method."""
        tables = []
        for members in self.members:
            nones = [i for i in members if statements[i].method == "none"]
            named = [(i, statements[i].method) for i in members if statements[i].method is not None]
            skip = [len(named)] * len(named)
            for pos in range(len(named) - 2, -1, -1):
                skip[pos] = pos + 1 if named[pos + 1][1] != named[pos][1] else skip[pos + 1]
            tables.append((nones, [i for i, _ in named], [m for _, m in named], skip))
        self._statements = statements
        return tables

    def _coverers(self, g) -> list[int]:
        """The groups that name every site of group ``g`` (found among those that may meet it)."""
        if g not in self._covered:
            near = {h for h, _ in self.near[g]}
            if all(r[1] + r[3] < INF for r in rects(self.keys[g][2])):  # no site in large stacks: covered vacuously
                near.update(h for name in self.keys[g][1] for h in self._by_name.get(name, ()))
            self._covered[g] = [h for h in sorted(near) if self._covers(h, g)]
        return self._covered[g]

    def first_replacing(self, j: int) -> int | None:
        """The first later statement that replaces or clears every site of statement ``j``."""
        method, found = self._statements[j].method, []
        for h in self._coverers(self.group[j]):
            nones, indices, methods, skip = self._replacers[h]
            k = bisect_right(nones, j)
            found += nones[k:k + 1]
            pos = bisect_right(indices, j)
            if method is not None and pos < len(indices):
                found += indices[skip[pos] if methods[pos] == method else pos:][:1]
        return min(found, default=None)


class _Index:
    """The rectangles of the groups on one site name, to find those that may meet a selection.

    Intervals from the start (``[3]``, ``[0:4]``) and from the end (``[-1]``, ``[-2:]``) that are
    short are filed under each of their positions; the rest (long ones, ``[1:-1]``, whole stacks)
    are few in practice and tested one by one."""

    def __init__(self, entries):
        self.front: dict[int, set] = {}  # position from the start -> groups; self.end: from the end
        self.end: dict[int, set] = {}
        self.other: list = []
        for g, rs in entries:
            for r in rs:
                if r[1] < INF and r[3] == INF and r[1] - r[0] <= _SHORT:
                    for p in range(r[0], r[1] + 1):
                        self.front.setdefault(p, set()).add(g)
                elif r[1] == INF and r[3] < INF and r[3] - r[2] <= _SHORT:
                    for q in range(r[2], r[3] + 1):
                        self.end.setdefault(q, set()).add(g)
                else:
                    self.other.append((r, g))
        self.front_keys, self.end_keys = sorted(self.front), sorted(self.end)

    def meeting(self, rs) -> set:
        out = set()
        for r in rs:
            for keys, table, lo, hi in ((self.front_keys, self.front, r[0], r[1]),
                                        (self.end_keys, self.end, r[2], r[3])):
                for key in keys[bisect_left(keys, lo):bisect_right(keys, hi)]:
                    out.update(table[key])
            out.update(g for s, g in self.other
                       if s[0] <= r[1] and r[0] <= s[1] and s[2] <= r[3] and r[2] <= s[3])
        return out
