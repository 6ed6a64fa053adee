"""Resolution: spec + backbone -> :class:`~vlsurgery.planning.model.Plan`.

1. Enumerate the backbone's slots: each stack's input, every layer's sublayers, and every linear
   of every projection role.
2. Apply the statements in order, site by site (the override rule): a method different from the
   site's current one replaces its configuration; the same method, or none, merges parameters
   field by field; no method on an empty site means ``adapter``; ``none`` removes the site.
3. For every configured site: check the parameter keys against the effective method, build the
   hyperparameters, let the registry fill site-derived values (``r = d / reduction``) and check
   them against the site's widths, and count its parameters.
4. Resolve ``train`` targets to base parameter names.

Every problem is collected and raised together as one :class:`ResolutionError`, each positioned at
the statement (or parameter) responsible; the same problem on many layers is reported once, with
the sites listed compactly.  Statements whose effect is entirely undone by later ones come back
as warnings on the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vlsurgery.errors import Problem, ResolutionError, Span, nearest
from vlsurgery.methods import registry
from vlsurgery.methods.params import DEFAULT_METHOD, METHOD_PARAMS, ProjectorParams, schema
from vlsurgery.methods.registry import SiteDims
from vlsurgery.profiles.backbone import load_backbone
from vlsurgery.planning.model import Plan, PlannedSite
from vlsurgery.profiles.profile import Profile, Stack
from vlsurgery.spec.ir import Index, Ref, Spec, Statement


@dataclass(frozen=True)
class Slot:
    """A place a method can go (before anything is placed there)."""

    path: str
    stack: str
    layer: int | None
    sublayer: str | None
    projection: str | None
    kind: str
    layer_module: str | None
    dims: SiteDims
    x_point: str | None = None
    h_point: str | None = None
    linear: str | None = None


@dataclass
class _State:
    method: str
    values: dict = field(default_factory=dict)      # key -> Param (the last one that set it)
    contributors: list = field(default_factory=list)  # statement indices


class _Problems:
    """Collects problems; identical ones (same place, same message) are merged, listing their sites."""

    def __init__(self):
        self.items: dict[tuple, list[str]] = {}

    def add(self, message: str, span: Span | None, site: str | None = None, *, severity="error",
            expected=None, hint=None):
        sites = self.items.setdefault((message, span, severity, expected, hint), [])
        if site and site not in sites:
            sites.append(site)

    def problems(self) -> list[Problem]:
        out = []
        for (message, span, severity, expected, hint), sites in self.items.items():
            if sites:
                message = f"{message} (at {compact_paths(sites)})"
            out.append(Problem(message, span, expected=expected, hint=hint, severity=severity))
        return sorted(out, key=lambda p: (p.span.source or "", p.span.line, p.span.column) if p.span else ("", 0, 0))


# --------------------------------------------------------------------------------------------
# slots of a backbone


def slots(profile: Profile) -> list[Slot]:
    """Every site of a backbone, in model order."""
    d = profile.d_model
    out = []
    for stack in profile.stacks:
        if stack.name == "encoder":  # the decoder's input is the text being generated: nothing to prepend
            out.append(Slot(f"{stack.name}.input", stack.name, None, "input", None, "input", None, SiteDims(d, d)))
        for i in range(stack.n_layers):
            module = stack.layer_module(i)
            for sub in stack.sublayers:
                base = f"{stack.name}[{i}].{sub.name}"
                out.append(Slot(base, stack.name, i, sub.name, None, "sublayer", module, SiteDims(d, d),
                                sub.x_point, sub.h_point))
                for role, linears in sub.projections:
                    for linear in linears:
                        path = f"{base}.{role}" + (f"[{linear.rsplit('.', 1)[-1]}]" if len(linears) > 1 else "")
                        d_in, d_out = profile.linear_dims(f"{module}.{linear}")
                        out.append(Slot(path, stack.name, i, sub.name, role, "projection", module,
                                        SiteDims(d_in, d_out), linear=linear))
    return out


def compact_paths(paths: list[str]) -> str:
    """``encoder[0].ffn, encoder[1].ffn, encoder[2].ffn`` -> ``encoder[0:3].ffn``."""
    from vlsurgery.render import group_paths

    groups = group_paths(paths)
    return ", ".join(groups[:4]) + (f" and {len(groups) - 4} more" if len(groups) > 4 else "")


# --------------------------------------------------------------------------------------------
# addresses -> slots


def _layers(stack: Stack, items, span, bb: str, issues: _Problems) -> list[int] | None:
    n = stack.n_layers
    if items is None:
        return list(range(n))
    chosen: list[int] = []
    where = f"{stack.name} of {bb} has {n} layer{'s' if n != 1 else ''} (0..{n - 1}, or -{n}..-1)"
    for item in items:
        if isinstance(item, Index):
            if not -n <= item.value < n:
                issues.add(f"layer {item.value} is out of range: {where}", span)
                return None
            chosen.append(item.value % n)
            continue
        bad = [b for b in (item.start, item.stop) if b is not None and not -n <= b <= n]
        if bad:
            text = f"{'' if item.start is None else item.start}:{'' if item.stop is None else item.stop}"
            issues.add(f"layer range [{text}] is out of range: {where}", span)
            return None
        picked = list(range(*slice(item.start, item.stop).indices(n)))
        if not picked:
            text = f"{'' if item.start is None else item.start}:{'' if item.stop is None else item.stop}"
            issues.add(f"layer range [{text}] selects no layer of {stack.name} ({n} layers)", span)
            return None
        chosen.extend(picked)
    return sorted(set(chosen))


def match(address, profile: Profile, by_key: dict, bb: str, issues: _Problems, what: str) -> list[Slot]:
    """The slots an address names; when it names none, a problem explaining why and what exists."""
    from vlsurgery.spec.printer import address_text

    segs = address.segments
    span = address.span
    stacks = [profile.stack(n) for n in (segs[0].names or profile.stack_names) if profile.stack(n)]
    missing_stacks = [n for n in (segs[0].names or ()) if not profile.stack(n)]
    found: list[Slot] = []
    reasons: list[str] = []
    for name in missing_stacks:
        reasons.append(f"{bb} has no stack '{name}' (stacks: {', '.join(profile.stack_names)})")
    for stack in stacks:
        if len(segs) >= 2 and segs[1].names == ("input",):
            if segs[0].layers is not None:
                issues.add(f"{what}: the input of a stack has no layers; write {stack.name}.input", span)
                return []
            if len(segs) > 2:
                issues.add(f"{what}: {stack.name}.input has no projections", span)
                return []
            if (stack.name, None, "input", None, None) not in by_key:
                issues.add(f"{what}: tokens can only be prepended to the encoder's input (write encoder.input); "
                           f"the {stack.name}'s input is the text being generated", span)
                return []
            found.append(by_key[(stack.name, None, "input", None, None)])
            continue
        layers = _layers(stack, segs[0].layers, span, bb, issues)
        if layers is None:
            return []
        subs = segs[1].names if len(segs) >= 2 and segs[1].names else stack.sublayer_names
        for sub_name in subs:
            sub = stack.sublayer(sub_name)
            if sub is None:
                reasons.append(f"{stack.name} has no {sub_name} (its sublayers: {', '.join(stack.sublayer_names)})")
                continue
            if len(segs) < 3:
                found.extend(by_key[(stack.name, i, sub.name, None, None)] for i in layers)
                continue
            roles = segs[2].names or sub.roles
            for role in roles:
                if role not in sub.roles:
                    reasons.append(f"{stack.name}.{sub.name} has no projection '{role}' "
                                   f"(its projections: {', '.join(sub.roles)})")
                    continue
                for i in layers:
                    found.extend(by_key[(stack.name, i, sub.name, role, linear)] for linear in sub.linears(role))
    if not found:
        text = address_text(address)
        reason = "; ".join(dict.fromkeys(reasons)) or "nothing there"
        valid = _valid_roles(profile)
        guess = nearest(_strip_layers(text), valid)
        issues.add(f"{what} `{text}` matches no site of {bb}: {reason}", span,
                   expected="an address of " + ", ".join(valid[:8]) + (", ..." if len(valid) > 8 else ""),
                   hint=f"did you mean `{guess}`?" if guess else None)
    return found


def _strip_layers(text: str) -> str:
    import re

    return re.sub(r"\[[^\]]*\]", "", text)


def _valid_roles(profile: Profile) -> list[str]:
    out = []
    for stack in profile.stacks:
        out.append(f"{stack.name}.input")
        for sub in stack.sublayers:
            out.append(f"{stack.name}.{sub.name}")
            out.extend(f"{stack.name}.{sub.name}.{role}" for role in sub.roles)
    return out


# --------------------------------------------------------------------------------------------
# statements -> per-site states (the override rule)


#: Gate fields that belong to one granularity; a merge that sets ``granularity`` resets them.
GATE_DETAILS = frozenset({"gate_r", "gate_init"})


def _apply(statements: tuple[Statement, ...], profile, by_key, bb, issues) -> tuple[dict, set, set]:
    states: dict[str, _State] = {}
    matched_any: set[int] = set()
    vacuous_none: set[int] = set()
    for index, stmt in enumerate(statements):
        targets = match(stmt.target, profile, by_key, bb, issues, "statement")
        if targets and (stmt.method is None or any(t.kind in METHOD_PARAMS.get(stmt.method, ((), ()))[1]
                                                   for t in targets)):
            matched_any.add(index)
        removed_something = False
        if stmt.method is not None and stmt.method not in METHOD_PARAMS:
            guess = nearest(stmt.method, METHOD_PARAMS)
            issues.add(f"unknown method '{stmt.method}'", stmt.span, expected="one of " + ", ".join(METHOD_PARAMS),
                       hint=f"did you mean '{guess}'?" if guess else None)
            continue
        for slot in targets:
            method = stmt.method
            if method is not None and slot.kind not in METHOD_PARAMS[method][1]:
                allowed = METHOD_PARAMS[method][1]
                article = "an" if slot.kind[0] in "aeiou" else "a"
                issues.add(f"{method} cannot be placed on {article} {slot.kind} site; it goes on "
                           f"{' or '.join(allowed)} sites", stmt.span, slot.path,
                           hint=_kind_hint(method, allowed))
                continue
            current = states.get(slot.path)
            if method == "none":
                if current is not None and current.method != "none":
                    removed_something = True
                    states[slot.path] = _State("none", {}, [index])
                continue
            if current is None or current.method == "none":
                states[slot.path] = _State(method or DEFAULT_METHOD, {p.key: p for p in stmt.params}, [index])
            elif method is not None and method != current.method:
                states[slot.path] = _State(method, {p.key: p for p in stmt.params}, [index])
            else:
                given = {p.key: p for p in stmt.params}
                if "granularity" in given:  # the gate is one choice: a new granularity drops the old gate's details
                    for key in GATE_DETAILS.difference(given):
                        current.values.pop(key, None)
                current.values.update(given)
                current.contributors.append(index)
        if stmt.method == "none" and targets and not removed_something:
            vacuous_none.add(index)
    return states, matched_any, vacuous_none


def _kind_hint(method: str, allowed) -> str | None:
    if "projection" in allowed and "sublayer" not in allowed:
        return f"put {method} on projections, e.g. encoder.self_attn.{{q,v}}: {method}"
    if allowed == ("input",):
        return f"put {method} on a stack's input, e.g. encoder.input: {method}"
    return None


def _coerce(params, params_cls, issues: _Problems, unknown, site: str | None = None) -> dict | None:
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


def _site(slot: Slot, state: _State, statements, issues: _Problems) -> PlannedSite | None:
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


def _stmt_span(statements, state: _State):
    return statements[state.contributors[-1]].span


# --------------------------------------------------------------------------------------------
# train targets -> base parameter names


def _train(spec: Spec, profile: Profile, bb: str, issues: _Problems) -> tuple[list[str], bool]:
    names: set[str] = set()
    projector = False
    params = profile.parameters
    for address in spec.train:
        segs = address.segments
        words = segs[0].names or ()
        if len(segs) == 1 and words in (("projector",), ("all",)):
            if words == ("all",):
                names.update(params)
                projector = projector or spec.projector is not None
            elif spec.projector is None:
                issues.add("train projector: this spec has no projector; declare one with `projector`",
                           address.span)
            else:
                projector = True
            continue
        found = _train_names(address, profile, bb, issues)
        if found is None:
            continue
        if not found:
            from vlsurgery.spec.printer import address_text

            has_bias = any(n.endswith(".bias") for n in params)
            why = f"; {profile.family} has no bias parameters" if not has_bias and "bias" in (segs[-1].names or ()) else ""
            issues.add(f"train `{address_text(address)}` matches no parameter of {bb}{why}", address.span)
        names.update(found)
    order = {name: i for i, name in enumerate(params)}
    return sorted(names, key=order.__getitem__), projector


def _train_names(address, profile: Profile, bb: str, issues: _Problems) -> list[str] | None:
    segs = address.segments
    parts = segs[-1].names or ("layernorm", "bias")
    prefix = segs[:-1]
    if not prefix or any(p not in ("layernorm", "bias") for p in parts):
        issues.add("a train target is `projector`, `all`, or an address ending in layernorm or bias",
                   address.span)
        return None
    params = profile.parameters
    out: list[str] = []
    for stack_name in prefix[0].names or profile.stack_names:
        stack = profile.stack(stack_name)
        if stack is None:
            continue
        layers = _layers(stack, prefix[0].layers, address.span, bb, issues)
        if layers is None:
            return None
        modules = [stack.layer_module(i) for i in layers]
        for part in parts:
            if len(prefix) == 1:
                if part == "layernorm":
                    owners = [f"{m}.{sub.norm}" for m in modules for sub in stack.sublayers]
                    if prefix[0].layers is None:
                        owners += list(stack.norms)
                    out += [n for o in owners for n in (f"{o}.weight", f"{o}.bias") if n in params]
                else:
                    roots = modules if prefix[0].layers is not None else [stack.root]
                    out += [n for n in params if n.endswith(".bias") and any(n.startswith(r + ".") for r in roots)]
                continue
            for sub_name in prefix[1].names or stack.sublayer_names:
                sub = stack.sublayer(sub_name)
                if sub is None:
                    continue
                if len(prefix) == 2:
                    if part == "layernorm":
                        out += [n for m in modules for n in (f"{m}.{sub.norm}.weight", f"{m}.{sub.norm}.bias")
                                if n in params]
                    else:
                        roots = [f"{m}.{o}." for m in modules for o in sub.owns]
                        out += [n for n in params if n.endswith(".bias") and any(n.startswith(r) for r in roots)]
                elif part == "bias":
                    for role in prefix[2].names or sub.roles:
                        out += [f"{m}.{lin}.bias" for m in modules for lin in sub.linears(role)
                                if f"{m}.{lin}.bias" in params]
    return list(dict.fromkeys(out))


# --------------------------------------------------------------------------------------------
# the entry point


def resolve(spec: Spec, backbone=None) -> Plan:
    """Resolve a spec (lets bound, extends merged) against a backbone (None: the spec's own)."""
    bb = load_backbone(backbone if backbone is not None else spec.backbone)
    spec = _bind_lets(spec)
    profile = bb.profile
    issues = _Problems()
    all_slots = slots(profile)
    by_key = {(s.stack, s.layer, s.sublayer, s.projection, s.linear): s for s in all_slots}
    states, matched, vacuous = _apply(spec.statements, profile, by_key, bb.name, issues)

    sites = []
    for slot in all_slots:
        state = states.get(slot.path)
        if state is None or state.method == "none":
            continue
        site = _site(slot, state, spec.statements, issues)
        if site is not None:
            sites.append(site)

    _shared_conflicts(sites, issues)
    projector = _projector(spec, issues)
    train, train_projector = _train(spec, profile, bb.name, issues)
    _warnings(spec.statements, states, matched, vacuous, issues)

    problems = issues.problems()
    if any(p.severity == "error" for p in problems):
        # warnings computed around an error (a statement that matched nothing) would mislead
        errors = [p for p in problems if p.severity == "error"]
        raise ResolutionError(errors, _texts(errors))
    return Plan(spec=spec, backbone=bb, sites=tuple(sites), projector=projector, train=tuple(train),
                train_projector=train_projector, warnings=tuple(problems))


def _bind_lets(spec: Spec) -> Spec:
    from vlsurgery.spec import resolve_lets

    return resolve_lets(spec)


def _projector(spec: Spec, issues: _Problems):
    if spec.projector is None:
        return None
    values = _coerce(spec.projector.params, ProjectorParams, issues,
                     lambda key, param: (f"unknown projector parameter '{key}'", param.span))
    return ProjectorParams(**values) if values is not None else None


def _shared_conflicts(sites, issues: _Problems):
    seen: dict[str, tuple[int, str]] = {}
    for site in sites:
        for key, numel in site.shared:
            if key in seen and seen[key][0] != numel:
                issues.add(f"shared tensor '{key}' has {numel} elements at {site.path} but {seen[key][0]} at "
                           f"{seen[key][1]}", None)
            seen.setdefault(key, (numel, site.path))


def _warnings(statements, states, matched, vacuous, issues: _Problems):
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
            later = sorted({statements[i].span.line for s in states.values() for i in s.contributors
                            if i > index and statements[i].span})
            hint = f"overridden by line{'s' if len(later) > 1 else ''} {', '.join(map(str, later))}" if later else None
            issues.add(f"`{text}` has no effect: later statements override it on every site it matches",
                       stmt.span, severity="warning", hint=hint)


def _texts(problems) -> dict:
    """Source texts for rendering problems with their lines (files named by the spans)."""
    texts = {}
    for p in problems:
        source = p.span.source if p.span else None
        if source and source not in texts:
            try:
                texts[source] = Path(source).read_text()
            except (OSError, ValueError):
                pass
    return texts
