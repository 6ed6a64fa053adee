"""Human-readable summaries of plans and counts: grouping sites, describing hyperparameters.

``group_paths`` folds the same change on many layers into one address::

    >>> group_paths(["encoder[0].ffn", "encoder[1].ffn", "encoder[2].ffn", "encoder[5].ffn"])
    ['encoder[0:3, 5].ffn']

``describe`` prints a method with the hyperparameters that matter (those differing from the
defaults, the gate folded into one word)::

    adapter r=96 heads=4 gate=matrix(r=96)
"""

from __future__ import annotations

import dataclasses
import re

_LAYER = re.compile(r"^([^.\[]+)\[(\d+)\](.*)$")


def layers_text(layers) -> str:
    """``[0, 1, 2, 5]`` -> ``0:3, 5`` (runs of two or more as Python slices)."""
    layers = sorted(set(layers))
    runs, start = [], None
    for i, layer in enumerate(layers):
        if start is None:
            start = layer
        if i + 1 == len(layers) or layers[i + 1] != layer + 1:
            runs.append(str(start) if layer == start else f"{start}:{layer + 1}")
            start = None
    return ", ".join(runs)


def group_key(path: str) -> tuple[str, int | None]:
    """(pattern with the layer taken out, layer): ``encoder[3].ffn`` -> (``encoder[*].ffn``, 3)."""
    m = _LAYER.match(path)
    if not m:
        return path, None
    return f"{m.group(1)}[*]{m.group(3)}", int(m.group(2))


def group_paths(paths, key=group_key) -> list[str]:
    """Fold paths that differ only in their layer into one address each, in first-seen order.

    ``key`` splits a path into (pattern with ``[*]`` for the layer, layer or None).
    """
    groups: dict[str, list[int]] = {}
    for path in paths:
        pattern, layer = key(path)
        groups.setdefault(pattern, [])
        if layer is not None:
            groups[pattern].append(layer)
    return [pattern.replace("[*]", f"[{layers_text(layers)}]") if layers else pattern
            for pattern, layers in groups.items()]


_GATE_FIELDS = ("granularity", "gate_r", "gate_init", "scale")


def describe(method: str, params) -> str:
    """``adapter r=96 heads=4 gate=matrix(r=96) scale=0.3``: what is not a default, compactly."""
    if params is None or not dataclasses.is_dataclass(params):
        return method
    parts = []
    defaults = type(params)()
    names = [f.name for f in dataclasses.fields(params)]
    for name in names:
        if name in _GATE_FIELDS:
            continue
        value = getattr(params, name)
        if name == "reduction" and getattr(params, "r", None) is not None:
            continue  # r is shown; the reduction that produced it is not needed
        if name == "r" or value != getattr(defaults, name):
            parts.append(f"{name}={_value(value)}")
    granularity = getattr(params, "granularity", "none")
    if granularity != "none":
        extra = []
        if granularity == "matrix" and params.gate_r is not None:
            extra.append(f"r={params.gate_r}")
        if getattr(params, "gate_init", "default") != "default":
            extra.append(f"init={params.gate_init}")
        parts.append(f"gate={granularity}" + (f"({', '.join(extra)})" if extra else ""))
    if "scale" in names and params.scale != 1.0:
        parts.append(f"scale={_value(params.scale)}")
    return " ".join([method] + parts)


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else repr(value)
    return str(value)


def params_dict(params) -> dict:
    """Every field of a hyperparameter dataclass, for JSON."""
    return dataclasses.asdict(params) if dataclasses.is_dataclass(params) else {}


# --------------------------------------------------------------------------------------------
# plan and count as text and JSON (what `vlsurgery plan` / `vlsurgery count` print)


def number(value: int) -> str:
    """``1234567`` -> ``1,234,567``."""
    return f"{value:,}"


def table(rows: list[tuple], right: set[int] = frozenset()) -> list[str]:
    """Rows as aligned text columns (columns in ``right`` right-aligned), trailing blanks trimmed."""
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        out.append("  ".join(cells).rstrip())
    return out


def heading(what: str, plan, title: str | None) -> str:
    where = f" of {title}" if title else ""
    return f"{what}{where} on {plan.backbone.name}: {plan.profile.describe()}"


def _projector_text(params) -> str:
    return " ".join(f"{k}={v}" for k, v in params_dict(params).items())


_PARAM_LAYER = re.compile(r"^(.*\.(?:layers|block))\.(\d+)\.(.*)$")


def _param_group_key(name: str) -> tuple[str, int | None]:
    m = _PARAM_LAYER.match(name)
    return (f"{m.group(1)}[*].{m.group(3)}", int(m.group(2))) if m else (name, None)


def train_groups(names) -> list[str]:
    """Parameter names folded by layer: ``model.encoder.layers[0:6].final_layer_norm.weight``."""
    return group_paths(names, key=_param_group_key)


def render_plan(plan, count, title: str | None = None) -> str:
    """Every concrete site, one per line, then train targets, projector and totals."""
    lines = [heading("plan", plan, title), ""]
    if plan.sites:
        rows = [("site", "method", "module", "X / linear", "H", "d_in->d_out", "params")]
        for s in plan.sites:
            if s.kind == "sublayer":
                at, h = s.x_point, s.h_point
            elif s.kind == "projection":
                at, h = s.linear, ""
            else:
                at, h = "(stack input)", ""
            rows.append((s.path, describe(s.method, s.params), s.layer_module or plan.profile.stack(s.stack).root,
                         at, h, f"{s.dims.d_in}->{s.dims.d_out}", number(s.trainable)))
        lines += table(rows, right={6})
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
        targets = ", ".join(t for t in _address_texts(plan.spec.train) if t != "projector")
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
        f"backbone:  {number(count.base)} parameters; added modules {number(count.added)}; projector {number(count.projector)}",
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
