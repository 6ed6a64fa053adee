"""IR -> canonical text: DSL (:func:`dumps_dsl`) and YAML (:func:`dumps_yaml`); parsing the
text gives back an equal Spec.

Canonical layout: ``backbone`` and ``extends``; the lets; ``projector`` and one ``train`` line;
then the statements in order, one per line; a blank line between these groups.  Within a line
everything is in the IR's normal order (alternatives and parameters sorted).  Values print as
written (``middleY`` stays ``middleY``): the IR records what the user said, the summary of
``vlsurgery check`` shows what it means.

Comments (``#``) are not part of the IR; :func:`dumps_dsl` re-attaches those it is given, each to
the declaration that follows it (or that ends on its line), which is what ``vlsurgery fmt`` does.
"""

from __future__ import annotations

import bisect
import math
import re

import yaml

from vlsurgery.spec.dsl import quote
from vlsurgery.spec.grammar import KEYWORDS
from vlsurgery.methods.params import CALL, call_text
from vlsurgery.spec.choice import Choice
from vlsurgery.spec.ir import Address, Index, Param, Ref, Segment, Spec, Statement

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FLOAT = re.compile(r"[-+]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][-+]?[0-9]+)?")
_BARE_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./@+:-]*")


def scalar_text(value) -> str | None:
    """A reference, boolean or number as both forms write it (``$r``, ``true``, ``96``, ``0.3``);
    None for a string, which each form quotes its own way."""
    if isinstance(value, Ref):
        return f"${value.name}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} has no spelling in a spec: values must be finite numbers")
        return repr(value)
    return None


def value_text(value) -> str:
    """A value as the DSL writes it: ``96``, ``0.3``, ``true``, ``vector``, ``"a b"``, ``$r``, ``(48|96)``."""
    if isinstance(value, Choice):
        return "(" + "|".join(value_text(v) for v in value.options) + ")"
    scalar = scalar_text(value)
    if scalar is not None:
        return scalar
    if _NAME.fullmatch(value) and value not in ("true", "false"):
        return value
    call = CALL.fullmatch(value)
    if call and value == call_text(call.group(1), float(call.group(2))):
        return value  # normal(0.02), as written in the DSL
    return quote(value)


def word_text(word: str) -> str:
    """A backbone name or path: bare when it reads unambiguously, else quoted."""
    return word if _BARE_PATH.fullmatch(word) else quote(word)


def _layer_text(item) -> str:
    if isinstance(item, Index):
        return str(item.value)
    return f"{'' if item.start is None else item.start}:{'' if item.stop is None else item.stop}"


def segment_text(segment: Segment) -> str:
    if segment.names is None:
        text = "*"
    elif len(segment.names) == 1:
        text = segment.names[0]
    else:
        text = "{" + ",".join(segment.names) + "}"
    if segment.layers is not None:
        text += "[" + ",".join(_layer_text(i) for i in segment.layers) + "]"
    return text


def address_text(address: Address) -> str:
    if isinstance(address, Choice):
        from vlsurgery.spec.space_text import address_choice_text

        return address_choice_text(address, segment_text, _layer_text)
    return ".".join(segment_text(s) for s in address.segments)


def params_text(params: tuple[Param, ...]) -> str:
    return " ".join(f"{p.key}={value_text(p.value)}" for p in params)


def statement_text(stmt: Statement) -> str:
    parts = [address_text(stmt.target) + ":"]
    if isinstance(stmt.method, Choice):
        parts.append("(" + " | ".join(" ".join(filter(None, [o.method, params_text(o.params)]))
                                      for o in stmt.method.options) + ")")
    elif stmt.method is not None:
        parts.append(stmt.method)
    if stmt.params:
        parts.append(params_text(stmt.params))
    return " ".join(parts)


def _groups(spec: Spec):
    """Groups of ``(text, [spans of the IR elements it prints])``, blank lines between groups."""
    head = []
    if spec.backbone is not None:
        head.append((f"backbone {word_text(spec.backbone)}", []))
    if spec.extends is not None:
        head.append((f"extends {quote(spec.extends)}", []))
    lets = [(f"let {p.key} = {value_text(p.value)}", [p.span]) for p in spec.lets]
    extras = []
    if spec.projector is not None:
        extras.append((" ".join(["projector"] + ([params_text(spec.projector.params)] if spec.projector.params else [])),
                       [spec.projector.span]))
    if spec.train:
        extras.append(("train " + ", ".join(address_text(a) for a in spec.train), [a.span for a in spec.train]))
    statements = [(statement_text(s), [s.span]) for s in spec.statements]
    return [g for g in (head, lets, extras, statements) if g]


def _attach(groups, comments):
    """Give each comment to a printed line: comments above everything stay on top; a comment on
    the line of an element trails it; any other leads the first element written after it; the
    rest end the file."""
    elements = []  # (first line, last line, group index, line index)
    for g, group in enumerate(groups):
        for k, (_, spans) in enumerate(group):
            spans = [sp for sp in spans if sp is not None]
            if spans:
                elements.append((min(sp.line for sp in spans), max(sp.end_line or sp.line for sp in spans), g, k))
    leading: dict = {}
    trailing: dict = {}
    rest = []
    elements.sort()
    firsts = [e[0] for e in elements]
    several = [e for e in elements if e[1] > e[0]]  # elements over several lines (a few at most)
    first_line = firsts[0] if firsts else None
    for line, text in sorted(comments):
        if first_line is not None and line < first_line:  # the file's header stays on top
            leading.setdefault((0, 0), []).append(text)
            continue
        lo, hi = bisect.bisect_left(firsts, line), bisect.bisect_right(firsts, line)
        same = elements[lo:hi] + [e for e in several if e[0] <= line <= e[1]]
        if same:
            trailing.setdefault(min(same)[2:], []).append(text)
        elif hi < len(elements):  # the first element written after the comment
            leading.setdefault(elements[hi][2:], []).append(text)
        else:
            rest.append(text)
    return leading, trailing, rest


def _comment_columns(g, group, leading, trailing) -> list[int]:
    """Trailing comments of consecutive lines line up: each run of lines that all have one (not
    broken by a comment line) pads its texts to the longest of them."""
    width = [0] * len(group)
    run: list[int] = []
    for k in range(len(group) + 1):
        if k < len(group) and (g, k) in trailing and not (run and (g, k) in leading):
            run.append(k)
            continue
        for j in run:
            width[j] = max(len(group[i][0]) for i in run)
        run = [k] if k < len(group) and (g, k) in trailing else []
    return width


def dumps_dsl(spec: Spec, comments: list[tuple[int, str]] | None = None, spans: dict | None = None) -> str:
    """Canonical DSL text of a spec.

    ``comments`` are ``(line, text)`` pairs from the source; ``spans`` gives the spans of the
    backbone/extends declarations (``{"backbone": Span, ...}``), which the IR does not keep.
    """
    groups = _groups(spec)
    if groups and spans:
        head = groups[0]
        for k, key in enumerate(k for k in ("backbone", "extends") if getattr(spec, k) is not None):
            if key in spans and k < len(head) and head[k][0].startswith(key):
                head[k][1].append(spans[key])
    leading, trailing, rest = _attach(groups, comments or [])
    out: list[str] = []
    for g, group in enumerate(groups):
        if g:
            out.append("")
        width = _comment_columns(g, group, leading, trailing)
        for k, (text, _) in enumerate(group):
            out += leading.get((g, k), [])
            tail = trailing.get((g, k))
            out.append(text.ljust(width[k]) + "  " + "  ".join(tail) if tail else text)
    if rest:
        out += ([""] if out else []) + rest
    return "\n".join(out) + "\n" if out else ""


# --------------------------------------------------------------------------------------------
# YAML


_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*")


def _yaml_str(text: str) -> str:
    """A YAML scalar that reads back as exactly this text (never as a number, bool or $ref)."""
    if _PLAIN.fullmatch(text) and yaml.safe_load(text) == text and not _FLOAT.fullmatch(text):
        return text
    out = []
    for ch in text:
        if ch in '\\"':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch.isprintable() and ch not in "\x85\u2028\u2029\ufeff":
            out.append(ch)
        elif ord(ch) <= 0xFF:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def yaml_value(value) -> str:
    text = scalar_text(value)
    if text is None:
        return _yaml_str(value)
    if isinstance(value, float) and "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")  # YAML 1.1 reads 1e-05 as a string, 1.0e-05 as a number
        text = f"{mantissa}.0e{exponent}"
    return text


def _params(params, indent) -> list[str]:
    return [f"{indent}{p.key}: {_yaml_choice(p.value)}" for p in params]


def _yaml_choice(value) -> str:
    """A value, or a choice as a YAML flow list (``[48, 96]``: a list in a value's place is a choice)."""
    if isinstance(value, Choice):
        return "[" + ", ".join(yaml_value(v) for v in value.options) + "]"
    return yaml_value(value)


def _yaml_method(method) -> str:
    if not isinstance(method, Choice):
        return _yaml_str(method)
    options = []
    for o in method.options:
        fields = ([f"method: {_yaml_str(o.method)}"] if o.method is not None else []) + [
            f"{p.key}: {_yaml_choice(p.value)}" for p in o.params]
        options.append("{" + ", ".join(fields) + "}" if o.params or o.method is None else _yaml_str(o.method))
    return "[" + ", ".join(options) + "]"


def dumps_yaml(spec: Spec) -> str:
    """Canonical YAML text of a spec; parsing it gives back an equal Spec."""
    out = []
    if spec.backbone is not None:
        out.append(f"backbone: {_yaml_str(spec.backbone)}")
    if spec.extends is not None:
        out.append(f"extends: {_yaml_str(spec.extends)}")
    if spec.lets:
        out += ["let:"] + _params(spec.lets, "  ")
    if spec.projector is not None:
        out += ["projector:"] + _params(spec.projector.params, "  ") if spec.projector.params else ["projector: {}"]
    if spec.train:
        out += ["train:"] + [f"  - {_yaml_str(address_text(a))}" for a in spec.train]
    if spec.statements:
        out.append("sites:")
        for stmt in spec.statements:
            out.append(f"  - at: {_yaml_str(address_text(stmt.target))}")
            if stmt.method is not None:
                out.append(f"    method: {_yaml_method(stmt.method)}")
            out += _params(stmt.params, "    ")
    return "\n".join(out) + "\n" if out else "{}\n"


__all__ = ["KEYWORDS", "address_text", "dumps_dsl", "dumps_yaml", "params_text", "segment_text", "statement_text",
           "value_text", "word_text"]
