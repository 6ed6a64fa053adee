"""Sites of two plans compared: matched by canonical path, compared field by field, folded into rows.

Folding: the same change (same kind, descriptions, fields and per-site counts) on many sites is
one row, first over layers with :func:`vlsurgery.render.group_key` (as ``count`` does),
then over projections, sublayers and stacks where everything else agrees, in a fixed order so
that ``diff(b, a)`` folds exactly as ``diff(a, b)`` does::

    encoder[0].self_attn, encoder[0].ffn, ..., encoder[5].ffn  ->  encoder[0:6].{self_attn,ffn}
"""

from __future__ import annotations

import dataclasses
import re

from vlsurgery.diff.kinds import ADDED, CHANGED, REMOVED
from vlsurgery.diff.model import FieldChange, SiteChange
from vlsurgery.render import describe, group_key, layers_text

_GATE_TEXT = re.compile(r"\bgate=(\w+(?:\([^)]*\))?)")
#: Fields that ``describe`` folds into the gate: a change of any of them is one ``gate`` change.  The
#: gate's initialisers (``init_gate``, ``init_gate_down``) are compared as fields of their own.
_GATE_FIELDS = ("granularity", "gate_r", "gate_pool")


def _gate(method: str, params) -> str:
    """The gate as ``describe`` folds it (``matrix(r=96)``, ``scalar(pool=all)``), or ``none``."""
    m = _GATE_TEXT.search(describe(method, params))
    return m.group(1) if m else "none"


def value_text(value) -> str:
    """A hyperparameter value as the DSL writes it (``96``, ``0.3``, ``true``); ``unset`` for None."""
    from vlsurgery.spec.printer import value_text as dsl_text

    return "unset" if value is None else dsl_text(value)


def _dims(d) -> str:
    return str(d.d_in) if d.d_in == d.d_out else f"{d.d_in}->{d.d_out}"


def _fields_of(params) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(params))


def field_changes(x, y) -> tuple[FieldChange, ...]:
    """What differs between two planned sites, field by field ((): the same module)."""
    if x.method != y.method:
        return (FieldChange("method", x.method, y.method),)
    out = []
    names = [f.name for f in dataclasses.fields(x.params)] if dataclasses.is_dataclass(x.params) else []
    # in describe()'s order: the method's own fields, then how its parts start (the modification's,
    # then the gate's), then the gate (its fields folded), then scale
    own = [n for n in names if n not in _GATE_FIELDS + ("scale",)]
    inits = sorted((n for n in own if n.startswith("init_")), key=lambda n: n.startswith("init_gate"))
    names = [n for n in own if n not in inits] + inits + [n for n in names if n == "scale"]
    for name in names:
        if name == "scale" and "granularity" in _fields_of(x.params):
            if _gate(x.method, x.params) != _gate(y.method, y.params):
                out.append(FieldChange("gate", _gate(x.method, x.params), _gate(y.method, y.params)))
        if name == "reduction" and x.params.r is not None and y.params.r is not None:
            continue  # only shapes r, which is compared itself
        va, vb = getattr(x.params, name), getattr(y.params, name)
        if va != vb or type(va) is not type(vb):
            out.append(FieldChange(name, value_text(va), value_text(vb)))
    if x.dims != y.dims:
        out.append(FieldChange("width", _dims(x.dims), _dims(y.dims)))
    if not out and x.trainable != y.trainable:  # cannot happen with a sound registry; never hide it
        out.append(FieldChange("parameters", f"{x.trainable:,}", f"{y.trainable:,}"))
    return tuple(out)


_PATH = re.compile(r"^(?P<stack>[^.\[]+)(?:\[(?P<layer>\d+)\])?"         # encoder[3]
                   r"\.(?P<sub>[^.]+)"                                    # .self_attn / .input
                   r"(?:\.(?P<proj>[^.\[]+)(?:\[(?P<lin>[^\]]+)\])?)?$")  # .v / .in[wi_0]
_RANK = {"encoder": 0, "decoder": 1, "input": -1, "self_attn": 0, "cross_attn": 1, "ffn": 2,
         "q": 0, "k": 1, "v": 2, "o": 3, "in": 4, "out": 5}


def path_key(path: str) -> tuple:
    """Model order of a canonical site path (the same on every backbone: a symmetric order)."""
    m = _PATH.match(path)
    if not m:
        return (99, 0, 0, 0, path)
    rank = lambda name: (_RANK.get(name, 99), name or "")  # noqa: E731
    return (rank(m["stack"]), int(m["layer"]) if m["layer"] else -1, rank(m["sub"]),
            rank(m["proj"]) if m["proj"] else (-1, ""), m["lin"] or "")


def _name_key(name: str) -> tuple:
    base = name.split("[", 1)[0]
    return (_RANK.get(base, 99), name)


def site_changes(plan_a, plan_b) -> tuple[SiteChange, ...]:
    sa, sb = {s.path: s for s in plan_a.sites}, {s.path: s for s in plan_b.sites}
    entries = []  # (path, signature)
    for path in sorted(set(sa) | set(sb), key=path_key):
        x, y = sa.get(path), sb.get(path)
        if x is not None and y is not None:
            fields = field_changes(x, y)
            if not fields:
                continue
            sig = (CHANGED, describe(x.method, x.params), describe(y.method, y.params), fields, x.trainable,
                   y.trainable)
        elif y is not None:
            sig = (ADDED, None, describe(y.method, y.params), (), 0, y.trainable)
        else:
            sig = (REMOVED, describe(x.method, x.params), None, (), x.trainable, 0)
        entries.append((path, sig))
    return tuple(SiteChange(sig[0], where, paths, sig[1], sig[2], sig[3], sig[4], sig[5])
                 for sig, where, paths in fold(entries))


def fold(entries) -> list[tuple]:
    """``(path, signature)`` pairs -> ``(signature, address, paths)``, same signatures folded over
    layers, then projections, sublayers and stacks (each only where all else agrees)."""
    by_layers: dict[tuple, list] = {}
    for path, sig in entries:
        pattern, layer = group_key(path)
        g = by_layers.setdefault((sig, pattern), [[], []])
        g[0].append(path)
        if layer is not None:
            g[1].append(layer)
    groups = []  # [sig, [stacks], layers, [subs], [projs], paths]
    for (sig, pattern), (paths, layers) in by_layers.items():
        m = _PATH.match(pattern.replace("[*]", "[0]"))
        if not m:
            groups.append([sig, [pattern], None, [None], [None], paths])
            continue
        proj = m["proj"] + (f"[{m['lin']}]" if m["lin"] else "") if m["proj"] else None
        groups.append([sig, [m["stack"]], tuple(sorted(set(layers))) if m["layer"] else None, [m["sub"]],
                       [proj], paths])
    for axis in (4, 3, 1):  # projections, then sublayers, then stacks
        merged: dict[tuple, list] = {}
        for g in groups:
            key = (g[0],) + tuple(tuple(g[i]) if isinstance(g[i], list) else g[i] for i in range(1, 5) if i != axis)
            key += (g[axis] == [None], "input" in g[3])  # a sublayer never folds with its projections or input
            if key in merged:
                target = merged[key]
                target[axis] = sorted(set(target[axis]) | set(g[axis]), key=lambda n: _name_key(n or ""))
                target[5] = target[5] + g[5]
            else:
                merged[key] = [g[0], list(g[1]), g[2], list(g[3]), list(g[4]), list(g[5])]
        groups = list(merged.values())
    out = []
    for sig, stacks, layers, subs, projs, paths in groups:
        paths = tuple(sorted(paths, key=path_key))
        out.append((sig, _address(stacks, layers, subs, projs), paths))
    return sorted(out, key=lambda g: (path_key(g[2][0]), g[0][0]))


def _alt(names) -> str:
    return names[0] if len(names) == 1 else "{" + ",".join(names) + "}"


def _address(stacks, layers, subs, projs) -> str:
    if subs == [None]:
        return stacks[0]
    projs = list(projs)
    linears = [p for p in projs if p and p.startswith("in[")]
    if len(linears) > 1:  # gated T5: in[wi_0] and in[wi_1] together are the role `in`
        projs = sorted({p for p in projs if p not in linears} | {"in"}, key=_name_key)
    text = _alt(stacks) + (f"[{layers_text(layers)}]" if layers else "") + "." + _alt(subs)
    return text + ("" if projs == [None] else "." + _alt(projs))
