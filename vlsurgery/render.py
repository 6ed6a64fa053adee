"""Text helpers shared by the plan stage, ``cli`` and ``diff``: folding site paths over layers,
describing hyperparameters, numbers and aligned tables.

``group_paths`` folds the same change on many layers into one address::

    >>> group_paths(["encoder[0].ffn", "encoder[1].ffn", "encoder[2].ffn", "encoder[5].ffn"])
    ['encoder[0:3, 5].ffn']

``describe`` prints a method with the hyperparameters that shape it (those differing from the
defaults, the gate folded into one word; how its parts start only when asked); ``init_parts``
how each part of a site starts::

    adapter r=96 heads=4 gate=matrix(r=96)
    down=default up=zero gate=zero gate_down=default
"""

from __future__ import annotations

import dataclasses
import re

_LAYER = re.compile(r"^([^.\[]+)\[(\d+)\](.*)$")


def describe_columns(columns) -> str:
    """``[0:32]`` for a site on a column slice of a fused projection, ``""`` for the whole output."""
    return "" if columns is None else f"[{columns[0]}:{columns[1]}]"


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


_GATE_FIELDS = ("granularity", "gate_r", "gate_init", "gate_pool", "init_gate", "init_gate_down", "scale")


def describe(method: str, params, *, inits: bool = False) -> str:
    """``adapter r=96 heads=4 gate=matrix(r=96) scale=0.3``: what is not a default, compactly.

    The gate's own keys fold into it: ``gate=scalar(pool=all)``.  Initialisers change no shape and
    no count, so they are left out unless ``inits`` (``init_up=zero ... gate=matrix(r=96,
    init=zero, down=backbone)``); ``plan`` shows them in a column of their own, :func:`init_parts`.
    """
    if params is None or not dataclasses.is_dataclass(params):
        return method
    parts = []
    defaults = type(params)()
    names = [f.name for f in dataclasses.fields(params)]
    for name in names:
        if name in _GATE_FIELDS or (not inits and _is_init(name)):
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
        if getattr(params, "gate_pool", "tokens") != "tokens":
            extra.append(f"pool={params.gate_pool}")
        for key, word in (("gate_init", "init"), ("init_gate", "init"), ("init_gate_down", "down")):
            if inits and getattr(params, key, "default") != "default":
                extra.append(f"{word}={getattr(params, key)}")
        parts.append(f"gate={granularity}" + (f"({', '.join(extra)})" if extra else ""))
    if "scale" in names and params.scale != 1.0:
        parts.append(f"scale={_value(params.scale)}")
    return " ".join([method] + parts)


def _is_init(name: str) -> bool:
    return name.startswith("init_") or name in ("init", "gate_init")


def init_parts(params) -> str:
    """How every part of a site's module starts, ``part=initialiser`` (``init_up`` -> ``up``): the
    parts of the gate only when there is one (``gate_down`` only for the matrix gate); for a
    method with only the older ``init`` key (``prompt``, ``ia3``), ``init=...``; else ``-``.

    >>> import dataclasses
    >>> @dataclasses.dataclass
    ... class Demo:
    ...     granularity: str = "scalar"
    ...     init_gate: str = "zero"
    ...     init_gate_down: str = "default"
    ...     init_up: str = "backbone"
    >>> init_parts(Demo())
    'up=backbone gate=zero'
    """
    if params is None or not dataclasses.is_dataclass(params):
        return "-"
    granularity = getattr(params, "granularity", "none")
    own, gate = [], []
    for f in dataclasses.fields(params):
        if not f.name.startswith("init_"):
            continue
        part, value = f.name[len("init_"):], getattr(params, f.name)
        if part.startswith("gate"):
            if granularity != "none" and (part != "gate_down" or granularity == "matrix"):
                gate.append(f"{part}={value}")
        else:
            own.append(f"{part}={value}")
    if not own and not gate and hasattr(params, "init"):
        return f"init={_value(params.init)}"
    return " ".join(own + gate) or "-"


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else repr(value)
    return str(value)


def params_dict(params) -> dict:
    """Every field of a hyperparameter dataclass, for JSON."""
    return dataclasses.asdict(params) if dataclasses.is_dataclass(params) else {}


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


_PARAM_LAYER = re.compile(r"^(.*\.(?:layers|block))\.(\d+)\.(.*)$")


def _param_group_key(name: str) -> tuple[str, int | None]:
    m = _PARAM_LAYER.match(name)
    return (f"{m.group(1)}[*].{m.group(3)}", int(m.group(2))) if m else (name, None)


def train_groups(names) -> list[str]:
    """Parameter names folded by layer: ``model.encoder.layers[0:6].final_layer_norm.weight``."""
    return group_paths(names, key=_param_group_key)
