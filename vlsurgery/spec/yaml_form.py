"""The YAML form of a spec: reader (YAML node graph -> IR) and canonical writer.

The reader never constructs Python objects from YAML: it composes the node graph with PyYAML's
SafeLoader (node marks give every line and column), checks duplicate keys and tags itself, and
converts scalars by their resolved tag.  Only plain data is allowed: tags that would build objects
(``!!python/object``, custom ``!tags``, ``!!binary``, ``!!set``...) are errors.

A plain scalar ``$r`` is a reference; a quoted ``"$r"`` is the text ``$r``.  ``1e-3`` is a
number here too (PyYAML alone would read it as text, following YAML 1.1).
"""

from __future__ import annotations

import bisect
import math
import re

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from vlsurgery.errors import Problem, Span, did_you_mean
from vlsurgery.spec import dsl
from vlsurgery.spec.ir import Param, Projector, Ref, Spec, Statement
from vlsurgery.spec.printer import address_text, scalar_text

TOP_KEYS = ("backbone", "extends", "let", "projector", "train", "sites")
_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp")}
_FLOAT = re.compile(r"[-+]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][-+]?[0-9]+)?")
_REF = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Lines:
    """Line and column of a character offset, lines ending at "\\n" only (as the DSL counts them;
    PyYAML's own marks also break lines at "\\r", NEL and U+2028)."""

    def __init__(self, text: str):
        self.starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]

    def at(self, index: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.starts, index)
        return line, index - self.starts[line - 1] + 1


class _Reader:
    def __init__(self, source, lines: _Lines):
        self.source = source
        self.lines = lines
        self.problems: list[Problem] = []
        self.meta: dict = {}

    def span(self, node: Node) -> Span:
        (line, col), (end_line, end_col) = self.lines.at(node.start_mark.index), self.lines.at(node.end_mark.index)
        return Span(self.source, line, col, end_line, end_col)

    def error(self, message, node, **kw):
        self.problems.append(Problem(message, self.span(node) if node is not None else None, **kw))

    def pair_span(self, key_node, value_node) -> Span:
        start, end = self.span(key_node), self.span(value_node)
        return Span(self.source, start.line, start.column, end.end_line, end.end_column)

    def tag_ok(self, node) -> bool:
        allowed = _SCALAR_TAGS if isinstance(node, ScalarNode) else {_TAG + "map", _TAG + "seq"}
        if node.tag in allowed:
            return True
        self.error(f"YAML tag '{node.tag.replace(_TAG, '!!')}' is not allowed", node,
                   expected="plain values: numbers, true/false, names, strings, lists and mappings")
        return False

    def mapping(self, node, what) -> list[tuple[str, Node, Node]]:
        """The ``(key, key node, value node)`` of a mapping, with duplicate and bad keys reported."""
        if not isinstance(node, MappingNode):
            self.error(f"{what} must be a mapping", node, expected="key: value pairs")
            return []
        if not self.tag_ok(node):
            return []
        out, seen = [], {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                self.error("merge keys (<<) are not supported", key_node, hint="use `extends` to build on a spec")
                continue
            if not isinstance(key_node, ScalarNode) or key_node.tag != _TAG + "str":
                self.error(f"keys of {what} must be names", key_node, expected="a name")
                continue
            key = key_node.value
            if key in seen:
                self.error(f"duplicate key '{key}' in {what}", key_node, expected="each key once",
                           hint=f"the first is at {seen[key]}")
                continue
            seen[key] = self.span(key_node)
            out.append((key, key_node, value_node))
        return out

    def scalar(self, node, what, *, refs=True):
        """A value: bool, int, float, str or Ref; None (reported) when it is not a plain scalar."""
        if not isinstance(node, ScalarNode):
            self.error(f"{what} must be a single value", node,
                       expected="a number, true/false, a name or a string, not a list or mapping")
            return None
        if not self.tag_ok(node):
            return None
        tag, text = node.tag[len(_TAG):], node.value
        try:
            if tag == "null":
                self.error(f"{what} has no value", node, expected="a number, true/false, a name or a string")
                return None
            if tag == "bool":
                return SafeConstructor().construct_yaml_bool(node)
            if tag == "int":
                return SafeConstructor().construct_yaml_int(node)
            if tag == "float":
                value = SafeConstructor().construct_yaml_float(node)
                if not math.isfinite(value):
                    self.error(f"{what} must be a finite number", node, expected="a finite number")
                    return None
                return value
        except (ConstructorError, ValueError):
            self.error(f"{what}: cannot read {text!r}", node)
            return None
        if node.style is None and refs and _REF.fullmatch(text):
            return Ref(text[1:], span=self.span(node))
        if node.style is None and tag == "str" and _FLOAT.fullmatch(text) and re.search(r"[eE]", text):
            value = float(text)
            return value if math.isfinite(value) else text
        return text

    def text(self, node, what):
        value = self.scalar(node, what, refs=False)
        if value is None:
            return None
        if not isinstance(value, str):
            self.error(f"{what} must be a name or a path", node, expected="a name or a path, found " + repr(value))
            return None
        return value

    def address(self, node, what):
        text = self.text(node, what)
        if text is None:
            return None
        span = self.span(node)
        if node.style in ('"', "'"):
            span = Span(span.source, span.line, span.column + 1, span.end_line, span.end_column)
        if node.start_mark.line != node.end_mark.line:
            span = Span(span.source, span.line, span.column)  # a folded scalar: columns inside are lost
        address, problems = dsl.parse_address(text, span)
        self.problems += problems
        return address

    def params(self, pairs, what) -> list[Param]:
        out = []
        for key, key_node, value_node in pairs:
            value = self.scalar(value_node, f"{what} parameter '{key}'")
            if value is None:
                continue
            if not _NAME.fullmatch(key):
                self.error(f"parameter name {key!r} is not a name", key_node, expected="a name such as r or heads")
                continue
            out.append(Param(key, value, span=self.pair_span(key_node, value_node)))
        return out

    def spec(self, root) -> Spec:
        if root is None:
            return Spec(source=self.source)
        if not isinstance(root, MappingNode):
            self.error("a YAML spec must be a mapping", root,
                       expected="keys " + ", ".join(TOP_KEYS))
            return Spec(source=self.source)
        fields: dict = {}
        for key, key_node, value in self.mapping(root, "the spec"):
            if key in ("backbone", "extends"):
                fields[key] = self.text(value, key)
                self.meta[key] = self.pair_span(key_node, value)
            elif key == "let":
                fields["lets"] = self.lets(value)
            elif key == "projector":
                pairs = [] if _is_null(value) else self.mapping(value, "projector")
                fields["projector"] = Projector(tuple(self.params(pairs, "projector")), span=self.span(key_node))
            elif key == "train":
                items = [value] if isinstance(value, ScalarNode) else self.sequence(value, "train")
                fields["train"] = tuple(a for a in (self.address(n, "a train target") for n in items) if a)
            elif key == "sites":
                fields["statements"] = tuple(s for s in (self.site(n) for n in self.sequence(value, "sites")) if s)
            else:
                self.error(f"unknown key '{key}'", key_node, expected="one of: " + ", ".join(TOP_KEYS),
                           hint=did_you_mean(key, TOP_KEYS))
        fields = {k: v for k, v in fields.items() if v is not None}
        return Spec(**fields, source=self.source)

    def sequence(self, node, what) -> list[Node]:
        if _is_null(node):
            return []
        if not isinstance(node, SequenceNode):
            self.error(f"{what} must be a list", node, expected="a list (- item per line, or [a, b])")
            return []
        return node.value if self.tag_ok(node) else []

    def lets(self, node) -> tuple[Param, ...]:
        out = []
        for key, key_node, value_node in self.mapping(node, "let"):
            if not _NAME.fullmatch(key):
                self.error(f"let name {key!r} is not a name", key_node, expected="a name such as r")
                continue
            value = self.scalar(value_node, f"let {key}")
            if value is not None:
                out.append(Param(key, value, span=self.pair_span(key_node, value_node)))
        return tuple(out)

    def site(self, node) -> Statement | None:
        pairs = self.mapping(node, "a site")
        at = next((v for k, _, v in pairs if k == "at"), None)
        if at is None:
            if isinstance(node, MappingNode):
                self.error("a site needs 'at:', the address it applies to", node, expected="at: encoder.ffn")
            return None
        method_node = next((v for k, _, v in pairs if k == "method"), None)
        method = self.text(method_node, "method") if method_node is not None else None
        params = self.params([p for p in pairs if p[0] not in ("at", "method")], "site")
        address = self.address(at, "at")
        if address is None:
            return None
        return Statement(address, method, tuple(params), span=self.span(node),
                         method_span=self.span(method_node) if method_node is not None else None)


def _is_null(node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _TAG + "null"


def _yaml_problem(e: yaml.YAMLError, source, lines: _Lines, text: str) -> Problem:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    if mark is not None and mark.index >= len(text.rstrip()) and getattr(e, "context_mark", None):
        mark = e.context_mark  # "unexpected end": show where the unclosed thing opened
    span = Span(source, *lines.at(mark.index)) if mark else None
    if isinstance(e, yaml.reader.ReaderError):
        span = Span(source, *lines.at(e.position))
    if isinstance(e, yaml.reader.ReaderError):
        return Problem(f"the text contains a character YAML does not allow: {chr(e.character)!r}"
                       if isinstance(e.character, int) else "the text is not readable as YAML", span)
    message = getattr(e, "problem", None) or str(e)
    context = getattr(e, "context", None)
    return Problem(f"not valid YAML: {message}", span, hint=context)


def parse_yaml(text: str, source: str | None = None, meta: dict | None = None) -> tuple[Spec, list[Problem]]:
    """The Spec a YAML text says, and the problems found reading it.

    ``meta``, if given, receives the spans of the backbone and extends entries.
    """
    lines = _Lines(text)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        return Spec(source=source), [_yaml_problem(e, source, lines, text)]
    reader = _Reader(source, lines)
    spec = reader.spec(root)
    if meta is not None:
        meta.update(reader.meta)
    return spec, reader.problems


# --------------------------------------------------------------------------------------------
# Writer


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
    return [f"{indent}{p.key}: {yaml_value(p.value)}" for p in params]


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
                out.append(f"    method: {_yaml_str(stmt.method)}")
            out += _params(stmt.params, "    ")
    return "\n".join(out) + "\n" if out else "{}\n"
