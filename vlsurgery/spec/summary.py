"""The summary ``vlsurgery check`` prints for a valid spec.

It shows what the design *means*: parameters with their canonical values (``middleY`` ->
``vector``, ``$r`` -> its value), the defaults a statement leaves to the schema (marked as
defaults), and for every statement the earlier statements it may override (the first
:data:`~vlsurgery.spec.validate.LISTED`, then how many more: a spec of a thousand statements on one
site prints a thousand short entries, not half a million)::

    backbone   bart-base
    lets       r = 96
    statements
      #1  design.vls:3  encoder.{ffn,self_attn}: adapter
            set       heads=4 r=96 ($r)
            defaults  activation=gelu_new granularity=none init_down=default init_up=default placement=sequential reduction=8 scale=1.0
      #2  design.vls:4  encoder.self_attn: (no method)
            set       granularity=vector (middleY)
            overrides #1 design.vls:3 (merges into)
"""

from __future__ import annotations

from vlsurgery.methods.params import DEFAULT_METHOD, METHOD_PARAMS, ProjectorParams, schema
from vlsurgery.spec.ir import Ref, Spec, Statement
from vlsurgery.spec.printer import address_text, value_text
from vlsurgery.spec.validate import LISTED, Overlaps

#: Gate details that mean something only for some granularities (shown among the defaults only then).
_GATE_DETAIL_FOR = {"gate_r": ("matrix",), "init_gate_down": ("matrix",), "gate_pool": ("scalar",),
                    "init_gate": ("scalar", "token", "vector", "matrix")}


def _shown_as_default(name: str, specs: dict, granularity) -> bool:
    """Whether an unset field is worth listing among the defaults: not a gate detail of another
    granularity, and not an older spelling of a per-part init (``init``, ``gate_init``)."""
    if name in _GATE_DETAIL_FOR:
        return granularity in _GATE_DETAIL_FOR[name]
    if name == "gate_init" or (name == "init" and ("init_up" in specs or "init_A" in specs)):
        return False
    return True


def _value(param, lets, spec_of=None) -> str:
    value = lets.get(param.value.name, param.value) if isinstance(param.value, Ref) else param.value
    shown = value
    if spec_of is not None and not isinstance(value, Ref):
        coerced, complaint = spec_of.coerce(value)
        shown = value if complaint else coerced
    text = f"{param.key}={value_text(shown)}"
    notes = []
    if shown != value and isinstance(value, str):
        notes.append(value)
    if isinstance(param.value, Ref):
        notes.append(f"${param.value.name}")
    return text + (f" ({', '.join(notes)})" if notes else "")


def _defaults(params_cls, given: dict, lets) -> list[str]:
    specs = schema(params_cls)
    granularity = given.get("granularity", specs.get("granularity").default if "granularity" in specs else None)
    if isinstance(granularity, Ref):
        granularity = lets.get(granularity.name)
    if isinstance(granularity, str) and "granularity" in specs:
        granularity = specs["granularity"].coerce(granularity)[0]
    out = []
    for name, spec in sorted(specs.items()):
        if name in given or not _shown_as_default(name, specs, granularity):
            continue
        if spec.default is None:
            reduction = given.get("reduction", specs["reduction"].default) if "reduction" in specs else None
            text = {"r": f"d/{value_text(reduction)}" if reduction is not None else "auto",
                    "gate_r": "r"}.get(name, "auto")
            out.append(f"{name}={text}")
        else:
            out.append(f"{name}={value_text(spec.default)}")
    return out


def _params_lines(params_cls, params, lets, indent, *, methodless=False) -> list[str]:
    specs = schema(params_cls) if params_cls else schema(METHOD_PARAMS[DEFAULT_METHOD][0]) if methodless else {}
    given = {p.key: p.value for p in params}
    lines = []
    if params:
        lines.append(f"{indent}set       " + " ".join(_value(p, lets, specs.get(p.key)) for p in params))
    if params_cls is not None:
        defaults = _defaults(params_cls, given, lets)
        if defaults:
            lines.append(f"{indent}defaults  " + " ".join(defaults))
    return lines


def effect(earlier_method: str | None, later_method: str | None) -> str:
    """What a later statement does to an earlier one's configuration on the sites they share."""
    if later_method == "none":
        return "removes"
    if later_method is None or later_method == earlier_method:
        return "merges into"
    if earlier_method is None:
        return "merges into or replaces"
    return "replaces"


def _where(stmt: Statement) -> str:
    s = stmt.span
    return f"{s.source or '<string>'}:{s.line}" if s else "<built>"


def _statement_lines(spec: Spec, lets) -> list[str]:
    out = []
    overlaps = Overlaps(spec.statements)
    for i, stmt in enumerate(spec.statements):
        head = f"  #{i + 1}  {_where(stmt)}  {address_text(stmt.target)}: "
        if stmt.method is None:
            head += f"(no method: merges into the current one; {DEFAULT_METHOD} where there is none)"
            params_cls = None
        elif stmt.method == "none":
            head += "none (removes what earlier statements placed on these sites)"
            params_cls = None
        else:
            head += stmt.method
            params_cls = METHOD_PARAMS.get(stmt.method, (None,))[0]
        out.append(head)
        out += _params_lines(params_cls, stmt.params, lets, "        ", methodless=stmt.method is None)
        for j, verdict in overlaps.earlier[i]:
            earlier = spec.statements[j]
            how = effect(earlier.method, stmt.method)
            if verdict == "yes":
                out.append(f"        overrides #{j + 1} {_where(earlier)} ({how})")
            else:
                out.append(f"        may overlap #{j + 1} {_where(earlier)} ({how}; depends on the number of layers)")
        more = overlaps.count[i] - len(overlaps.earlier[i])
        if more:
            out.append(f"        and {more} more earlier statement{'s' if more > 1 else ''} it may override "
                       f"(only the first {LISTED} are listed)")
    return out


def summarize(spec: Spec, chain: list[str] | None = None) -> str:
    """What a (valid) spec says, in the format of ``vlsurgery check``; ``chain``: the extends files."""
    lets = {p.key: p.value for p in spec.lets}
    lines = [f"backbone   {spec.backbone if spec.backbone is not None else '(none: give one when compiling)'}"]
    if chain and len(chain) > 1:
        lines.append("extends    " + " -> ".join(chain))
    elif spec.extends is not None:
        lines.append(f"extends    {spec.extends} (not merged)")
    if spec.lets:
        lines.append("lets       " + ", ".join(f"{p.key} = {value_text(p.value)}" for p in spec.lets))
    if spec.projector is None:
        lines.append("projector  (none)")
    else:
        lines.append("projector")
        lines += _params_lines(ProjectorParams, spec.projector.params, lets, "  ")
    lines.append("train      " + (", ".join(address_text(a) for a in spec.train) if spec.train else "(nothing extra)"))
    count = len(spec.statements)
    lines.append(f"statements ({count})" if count else "statements (none)")
    lines += _statement_lines(spec, lets)
    return "\n".join(lines)
