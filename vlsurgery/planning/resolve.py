"""Resolution: spec + backbone -> :class:`~vlsurgery.planning.model.Plan`.

1. Enumerate the backbone's slots (:mod:`vlsurgery.planning.slots`).
2. Apply the statements in order, site by site (the override rule): a method different from the
   site's current one replaces its configuration; the same method, or none, merges parameters
   field by field; no method on an empty site means ``adapter``; ``none`` removes the site.  Which
   sites an address names is :func:`vlsurgery.spec.addresses.select`, on the backbone's own roles.
3. For every configured site: check the parameter keys against the effective method, build the
   hyperparameters, let the registry fill site-derived values (``r = d / reduction``) and check
   them against the site's widths, and count its parameters.
4. Resolve ``train`` targets to base parameter names (:mod:`vlsurgery.planning.train`).

Every problem is collected and raised together as one :class:`ResolutionError`, each positioned at
the statement (or parameter) responsible; the same problem on many layers is reported once, with
the sites listed compactly.  Statements whose effect is entirely undone by later ones come back
as warnings on the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vlsurgery.errors import ResolutionError, nearest
from vlsurgery.methods import registry
from vlsurgery.methods.params import DEFAULT_METHOD, GATE_DETAILS, METHOD_PARAMS, ProjectorParams, schema
from vlsurgery.planning.model import Plan, PlannedSite
from vlsurgery.planning.problems import Problems, source_texts
from vlsurgery.planning.slots import Slot, by_names, slots
from vlsurgery.planning.train import train_targets
from vlsurgery.profiles.backbone import load_backbone
from vlsurgery.spec.addresses import select
from vlsurgery.spec.ir import Ref, Spec, Statement


@dataclass
class _State:
    method: str
    values: dict = field(default_factory=dict)      # key -> Param (the last one that set it)
    contributors: list = field(default_factory=list)  # statement indices


# --------------------------------------------------------------------------------------------
# statements -> per-site states (the override rule)


def targets(address, profile, named: dict, backbone: str, issues: Problems) -> list[Slot]:
    """The sites an address names on this backbone, each once, in model order (a problem in
    ``issues`` when none).  Roles naming one linear (LLaMA's ``in`` and ``gate``) share its site
    path: the first slot stands for it, so a statement reaches the site once and is counted once."""
    layers = {stack.name: stack.n_layers for stack in profile.stacks}
    names, problem = select(address, profile.roles, layers, backbone)
    if problem is not None:
        issues.add_problem(problem)
    unique: dict[str, Slot] = {}
    for key in names:
        for slot in named.get(key, ()):
            unique.setdefault(slot.path, slot)
    return list(unique.values())


def _apply(statements: tuple[Statement, ...], profile, named, bb, issues) -> tuple[dict, set, set, dict]:
    states: dict[str, _State] = {}
    replaced_by: dict[int, set[int]] = {}  # statement -> the statements that replaced or removed it somewhere
    matched_any: set[int] = set()
    vacuous_none: set[int] = set()
    for index, stmt in enumerate(statements):
        sites = targets(stmt.target, profile, named, bb, issues)
        if sites and (stmt.method is None or any(t.kind in METHOD_PARAMS.get(stmt.method, ((), ()))[1]
                                                 for t in sites)):
            matched_any.add(index)
        removed_something = False
        if stmt.method is not None and stmt.method not in METHOD_PARAMS:
            guess = nearest(stmt.method, METHOD_PARAMS)
            issues.add(f"unknown method '{stmt.method}'", stmt.span, expected="one of " + ", ".join(METHOD_PARAMS),
                       hint=f"did you mean '{guess}'?" if guess else None)
            continue
        for slot in sites:
            method = stmt.method
            if method is not None and slot.kind not in METHOD_PARAMS[method][1]:
                allowed = METHOD_PARAMS[method][1]
                article = "an" if slot.kind[0] in "aeiou" else "a"
                issues.add(f"{method} cannot be placed on {article} {slot.kind} site; it goes on "
                           f"{' or '.join(allowed)} sites", stmt.span, slot.path,
                           hint=_kind_hint(method, allowed))
                continue
            current = states.get(slot.path)
            if method is None and slot.kind not in METHOD_PARAMS[DEFAULT_METHOD][1] and (
                    current is None or current.method == "none"):
                issues.add(_no_method(slot, current, statements), stmt.span, slot.path,
                           expected=f"a method for {slot.kind} sites, e.g. "
                           + ", ".join(m for m, (_, kinds) in METHOD_PARAMS.items() if kinds == (slot.kind,)),
                           hint=f"name the method, e.g. {slot.path}: prompt" if slot.kind == "input" else None)
                continue
            if method == "none":
                if current is not None and current.method != "none":
                    removed_something = True
                    _replace(states, slot.path, _State("none", {}, [index]), replaced_by)
                continue
            if current is None or current.method == "none":
                _replace(states, slot.path, _State(method or DEFAULT_METHOD, {p.key: p for p in stmt.params}, [index]),
                         replaced_by)
            elif method is not None and method != current.method:
                _replace(states, slot.path, _State(method, {p.key: p for p in stmt.params}, [index]), replaced_by)
            else:
                given = {p.key: p for p in stmt.params}
                if "granularity" in given:  # the gate is one choice: a new granularity drops the old gate's details
                    for key in set(GATE_DETAILS).difference(given):
                        current.values.pop(key, None)
                current.values.update(given)
                current.contributors.append(index)
        if stmt.method == "none" and sites and not removed_something:
            vacuous_none.add(index)
    return states, matched_any, vacuous_none, replaced_by


def _replace(states: dict, path: str, state: _State, replaced_by: dict) -> None:
    """Put ``state`` on a site, noting that its statement overrode the previous state's statements."""
    for index in states[path].contributors if path in states else ():
        replaced_by.setdefault(index, set()).add(state.contributors[0])
    states[path] = state


def _no_method(slot: Slot, current, statements) -> str:
    """Why a statement without a method cannot go on a site where no method remains."""
    remover = statements[current.contributors[0]].span if current is not None else None
    here = f" (the `none` at {remover} leaves it empty)" if remover else ""
    return (f"no method given, and {slot.path} has none here{here}: the default method '{DEFAULT_METHOD}' "
            f"cannot be placed on {'an' if slot.kind[0] in 'aeiou' else 'a'} {slot.kind} site")


def _kind_hint(method: str, allowed) -> str | None:
    if "projection" in allowed and "sublayer" not in allowed:
        return f"put {method} on projections, e.g. encoder.self_attn.{{q,v}}: {method}"
    if allowed == ("input",):
        return f"put {method} on a stack's input, e.g. encoder.input: {method}"
    return None


def _coerce(params, params_cls, issues: Problems, unknown, site: str | None = None) -> dict | None:
    """Check bound parameter values against a hyperparameter schema: {key: value}, or None after
    reporting every problem (``unknown(key, param)`` says what an unknown key is)."""
    fields = schema(params_cls)
    values, ok = {}, True
    for param in params:
        spec = fields.get(param.key)
        if spec is None:
            guess = nearest(param.key, fields)
            message, span = unknown(param.key, param)
            expected = "one of " + ", ".join(sorted(fields)) if fields else "no parameters"
            issues.add(message, span, site, expected=expected, hint=f"did you mean '{guess}'?" if guess else None)
            ok = False
        elif isinstance(param.value, Ref):
            issues.add(f"${param.value.name} is not bound by any `let`", param.span)
            ok = False
        else:
            value, error = spec.coerce(param.value)
            if error:
                issues.add(error, param.span, expected=spec.describe())
                ok = False
            else:
                values[param.key] = value
    return values if ok else None


def _site(slot: Slot, state: _State, statements, issues: Problems) -> PlannedSite | None:
    """Hyperparameters of one configured slot, finalised and counted; None if it has problems."""
    entry = registry.get(state.method)

    def unknown(key, param):
        chooser = statements[state.contributors[0]]
        line = f", chosen at line {chooser.span.line}" if chooser.span else ""
        return (f"parameter '{key}' is not valid for method '{state.method}' (the method of this site{line})",
                param.span or _stmt_span(statements, state))

    values = _coerce(state.values.values(), entry.params, issues, unknown, slot.path)
    if values is None:
        return None
    hp, problems = entry.finalize(entry.params(**values), slot.dims)
    if problems:
        for key, message in problems:
            param = state.values.get(key)
            issues.add(message, param.span if param is not None else _stmt_span(statements, state), slot.path)
        return None
    shared = tuple(sorted(entry.shared(hp, slot.dims).items()))
    return PlannedSite(**vars(slot), method=state.method, params=hp, trainable=entry.count(hp, slot.dims),
                       shared=shared, statements=tuple(state.contributors))


def configure(slot: Slot, stmt: Statement, issues: Problems) -> PlannedSite | None:
    """What one statement alone makes of an empty slot (the override rule's first step), finalised
    and counted; None when it places nothing there (``none``, an unknown method, a method that
    does not go on this kind of site) or when its parameters have a problem (in ``issues``).
    The search counts a statement no other statement touches with it (search/fast.py)."""
    method = stmt.method or DEFAULT_METHOD
    if method == "none" or method not in METHOD_PARAMS or slot.kind not in METHOD_PARAMS[method][1]:
        return None
    return _site(slot, _State(method, {p.key: p for p in stmt.params}, [0]), (stmt,), issues)


def _stmt_span(statements, state: _State):
    return statements[state.contributors[-1]].span


# --------------------------------------------------------------------------------------------
# the entry point


def resolve(spec: Spec, backbone=None) -> Plan:
    """Resolve a spec (lets bound, extends merged) against a backbone (None: the spec's own)."""
    bb = load_backbone(backbone if backbone is not None else spec.backbone)
    spec = _bind_lets(spec)
    profile = bb.profile
    issues = Problems()
    all_slots = slots(profile)
    states, matched, vacuous, replaced_by = _apply(spec.statements, profile, by_names(all_slots), bb.name, issues)

    sites, placed = [], set()
    for slot in all_slots:
        state = states.get(slot.path)
        if state is None or state.method == "none" or slot.path in placed:  # a site reached by two roles: once
            continue
        placed.add(slot.path)
        site = _site(slot, state, spec.statements, issues)
        if site is not None:
            sites.append(site)

    _shared_conflicts(sites, issues)
    projector = _projector(spec, issues)
    train, train_projector = train_targets(spec, profile, bb.name, issues)
    _warnings(spec.statements, states, matched, vacuous, replaced_by, issues)

    problems = issues.problems()
    if any(p.severity == "error" for p in problems):
        # warnings computed around an error (a statement that matched nothing) would mislead
        errors = [p for p in problems if p.severity == "error"]
        raise ResolutionError(errors, source_texts(errors))
    return Plan(spec=spec, backbone=bb, sites=tuple(sites), projector=projector, train=tuple(train),
                train_projector=train_projector, warnings=tuple(problems))


def _bind_lets(spec: Spec) -> Spec:
    from vlsurgery.spec import resolve_lets

    return resolve_lets(spec)


def _projector(spec: Spec, issues: Problems):
    if spec.projector is None:
        return None
    values = _coerce(spec.projector.params, ProjectorParams, issues,
                     lambda key, param: (f"unknown projector parameter '{key}'", param.span))
    return ProjectorParams(**values) if values is not None else None


def _shared_conflicts(sites, issues: Problems):
    seen: dict[str, tuple[int, str]] = {}
    for site in sites:
        for key, numel in site.shared:
            if key in seen and seen[key][0] != numel:
                issues.add(f"shared tensor '{key}' has {numel} elements at {site.path} but {seen[key][0]} at "
                           f"{seen[key][1]}", None)
            seen.setdefault(key, (numel, site.path))


def _warnings(statements, states, matched, vacuous, replaced_by, issues: Problems):
    from vlsurgery.spec.printer import statement_text

    effective = {i for state in states.values() for i in state.contributors}
    for index, stmt in enumerate(statements):
        if index not in matched:
            continue  # already an error
        text = statement_text(stmt)
        if index in vacuous:
            issues.add(f"`{text}` removes nothing: no earlier statement placed a method on the sites it matches",
                       stmt.span, severity="warning")
        elif index not in effective:
            later = sorted({statements[i].span.line for i in replaced_by.get(index, ()) if statements[i].span})
            shown = ", ".join(map(str, later[:_SHOWN])) + (
                f" and {len(later) - _SHOWN} more" if len(later) > _SHOWN else "")
            hint = f"overridden by line{'s' if len(later) > 1 else ''} {shown}" if later else None
            issues.add(f"`{text}` has no effect: later statements override it on every site it matches",
                       stmt.span, severity="warning", hint=hint)


#: How many overriding lines a "has no effect" warning names.
_SHOWN = 10
