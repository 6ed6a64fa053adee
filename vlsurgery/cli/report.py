"""What ``vlsurgery plan`` and ``vlsurgery count`` print: a plan and its count as text and JSON."""

from __future__ import annotations

from vlsurgery.render import (describe, describe_columns, group_key, init_parts, layers_text, number, params_dict, table,
                              train_groups)


# --------------------------------------------------------------------------------------------
# plan and count as text and JSON (what `vlsurgery plan` / `vlsurgery count` print)


def heading(what: str, plan, title: str | None) -> str:
    where = f" of {title}" if title else ""
    return f"{what}{where} on {plan.backbone.name}: {plan.profile.describe()}"


def _projector_text(params) -> str:
    """Its sizes, and the initialisers that are not ``default`` (one ``init=`` when all agree)."""
    values = params_dict(params)
    inits = {k: v for k, v in values.items() if k.startswith("init_")}
    parts = [f"{k}={v}" for k, v in values.items() if k not in inits]
    if len(set(inits.values())) == 1:
        value = next(iter(inits.values()))
        return " ".join(parts + ([f"init={value}"] if value != "default" else []))
    return " ".join(parts + [f"{k}={v}" for k, v in inits.items() if v != "default"])


def render_plan(plan, count, title: str | None = None) -> str:
    """Every concrete site, one per line (with how each of its parts starts, ``init``), then train
    targets, projector and totals."""
    lines = [heading("plan", plan, title), ""]
    if plan.sites:
        rows = [("site", "method", "init", "module", "X / linear", "H", "d_in->d_out", "params")]
        for s in plan.sites:
            if s.kind == "sublayer":
                at, h = s.x_point, s.h_point
            elif s.kind == "projection":  # a column slice of a fused projection: attn.c_attn[0:768]
                at, h = s.linear + describe_columns(s.columns), ""
            else:
                at, h = "(stack input)", ""
            rows.append((s.path, describe(s.method, s.params), init_parts(s.params),
                         s.layer_module or plan.profile.stack(s.stack).root,
                         at, h, f"{s.dims.d_in}->{s.dims.d_out}", number(s.trainable)))
        lines += table(rows, right={7})
    else:
        lines.append("no sites: the spec places no method")
    if plan.shared:
        lines += ["", "shared tensors: " + ", ".join(f"{k} ({number(v)})" for k, v in plan.shared.items())]
    lines.append("")
    if plan.train:
        lines.append(f"trainable backbone parameters ({len(plan.train)} tensors, {number(count.base_trainable)}):")
        lines += [f"  {g}" for g in train_groups(plan.train)]
    else:
        lines.append("trainable backbone parameters: none")
    if plan.projector is not None:
        state = "trainable" if plan.train_projector else "frozen"
        lines.append(f"projector: {_projector_text(plan.projector)} ({state}, {number(count.projector)} parameters)")
    lines += ["", _totals(count)]
    return "\n".join(lines) + "\n"


def _totals(count) -> str:
    return (f"trainable {number(count.trainable)} of {number(count.total)} parameters "
            f"({count.trainable_percent:.4f} %)")


def count_groups(count) -> list[dict]:
    """Sites with the same change on several layers folded into one group (first-seen order)."""
    groups: dict[tuple, dict] = {}
    for s in count.sites:
        pattern, layer = group_key(s.path)
        desc = describe(s.method, s.site.params)
        key = (pattern, desc, s.trainable)
        g = groups.setdefault(key, {"pattern": pattern, "method": s.method, "describe": desc,
                                    "per_site": s.trainable, "layers": [], "paths": []})
        g["paths"].append(s.path)
        if layer is not None:
            g["layers"].append(layer)
    for g in groups.values():
        g["path"] = (g["pattern"].replace("[*]", f"[{layers_text(g['layers'])}]") if g["layers"]
                     else g["pattern"])
        g["sites"] = len(g["paths"])
        g["trainable"] = g["per_site"] * g["sites"]
    return list(groups.values())


def render_count(count, title: str | None = None) -> str:
    """Trainable parameters site group by site group, then the extras and the totals."""
    plan = count.plan
    lines = [heading("parameters", plan, title), ""]
    rows = [("where", "what", "sites x each", "trainable")]
    for g in count_groups(count):
        rows.append((g["path"], g["describe"], f"{g['sites']} x {number(g['per_site'])}", number(g["trainable"])))
    for key, numel in count.shared.items():
        rows.append(("shared", key, "1 x " + number(numel), number(numel)))
    if plan.projector is not None:
        rows.append(("projector", _projector_text(plan.projector) + ("" if plan.train_projector else " (frozen)"),
                     "", number(count.projector) if plan.train_projector else "0"))
    if plan.train:
        # `projector` has its own row, unless it is the model's own (LLaVA's), one of these tensors
        targets = ", ".join(t for t in _address_texts(plan.spec.train) if t != "projector" or plan.projector is None)
        rows.append(("backbone", f"train {targets} ({len(plan.train)} tensors)", "", number(count.base_trainable)))
    if len(rows) == 1:
        rows.append(("(nothing)", "the spec adds and trains nothing", "", "0"))
    lines += table(rows, right={2, 3})
    lines += [""]
    stacks = ", ".join(f"{k} {number(v)}" for k, v in count.by_stack.items() if v)
    methods = ", ".join(f"{k} {number(v)}" for k, v in count.by_method.items() if v)
    if stacks:
        lines.append(f"by stack:  {stacks}")
    if methods:
        lines.append(f"by method: {methods}")
    lines += [
        f"backbone:  {number(count.base)} parameters; added modules {number(count.added)}"
        # a model's own projector (LLaVA's) is part of the backbone: no added one to report
        + ("" if plan.profile.own_projector else f"; projector {number(count.projector)}"),
        _totals(count),
    ]
    return "\n".join(lines) + "\n"


def _address_texts(addresses) -> list[str]:
    from vlsurgery.spec.printer import address_text

    return [address_text(a) for a in addresses]


def _site_json(site, full: bool) -> dict:
    out = {"path": site.path, "stack": site.stack, "layer": site.layer, "kind": site.kind, "method": site.method,
           "params": params_dict(site.params), "trainable": site.trainable,
           "d_in": site.dims.d_in, "d_out": site.dims.d_out}
    if full:
        out.update(sublayer=site.sublayer, projection=site.projection, layer_module=site.layer_module,
                   x_point=site.x_point, h_point=site.h_point, linear=site.linear,
                   columns=list(site.columns) if site.columns else None,
                   shared=dict(site.shared))
    return out


def count_json(count, *, full_sites: bool = False, title: str | None = None) -> dict:
    plan = count.plan
    return {
        "spec": title,
        "backbone": plan.backbone.name,
        "family": plan.profile.family,
        "trainable": count.trainable,
        "total": count.total,
        "frozen": count.frozen,
        "trainable_percent": count.trainable_percent,
        "base": count.base,
        "base_trainable": count.base_trainable,
        "added": count.added,
        "projector": None if plan.projector is None else {
            "params": params_dict(plan.projector), "parameters": count.projector,
            "trainable": plan.train_projector},
        "shared": dict(count.shared),
        "by_method": dict(count.by_method),
        "by_stack": dict(count.by_stack),
        "groups": [{k: g[k] for k in ("path", "method", "describe", "sites", "per_site", "trainable")}
                   for g in count_groups(count)],
        "train": list(plan.train),
        "sites": [_site_json(s, full_sites) for s in plan.sites],
        "warnings": [p.render() for p in plan.warnings],
    }
