"""The YAML form of a spec: the reader (YAML node graph -> IR); the writer is
:func:`vlsurgery.spec.printer.dumps_yaml`.

The reader never constructs Python objects from YAML: it composes the node graph with PyYAML's
SafeLoader (node marks give every line and column), checks duplicate keys and tags itself, and
converts scalars by their resolved tag.  Only plain data is allowed: tags that would build objects
(``!!python/object``, custom ``!tags``, ``!!binary``, ``!!set``...) are errors.

A plain scalar ``$r`` is a reference; a quoted ``"$r"`` is the text ``$r``.  ``1e-3`` is a
number here too (PyYAML alone would read it as text, following YAML 1.1).  The node graph is
built from PyYAML's events without recursion (:func:`compose`): nesting deeper than
``LIMITS.yaml_depth``, aliases (``*name``) and a second document are errors, and so are numbers
outside the language's range (``LIMITS.number``), as in the DSL.
"""

from __future__ import annotations

import bisect
import re

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from vlsurgery.errors import LIMITS, Problem, Span, did_you_mean
from vlsurgery.methods.params import CALL, METHOD_PARAMS, schema
from vlsurgery.spec import dsl
from vlsurgery.spec.grammar import NUMBER_RANGE, number_complaint
from vlsurgery.spec.choice import Choice, Option
from vlsurgery.spec.ir import Param, Projector, Ref, Spec, Statement

TOP_KEYS = ("backbone", "extends", "let", "projector", "train", "sites")
_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp")}
_FLOAT = re.compile(r"[-+]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][-+]?[0-9]+)?")
_REF = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SURROGATE = re.compile("[\ud800-\udfff]")
_ALIAS_HINT = "quote a value that starts with '*': at: \"*.ffn\" (YAML reads a plain *name as an alias)"


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
        if not self.tag_ok(node) or not self.bounded(node, what):
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
            if tag in ("int", "float"):
                if len(text) > LIMITS.number_text:  # before reading it: long digit strings cost
                    return self.number(text, None, node)
                value = getattr(SafeConstructor(), f"construct_yaml_{tag}")(node)
                return self.number(text, value if tag == "int" else float(value), node)
        except (ConstructorError, ValueError, OverflowError):
            self.error(f"{what}: cannot read {text[:40]!r}", node)
            return None
        if _SURROGATE.search(text):
            self.error(f"{what} contains an invalid character (a lone surrogate)", node, expected="text")
            return None
        if node.style is None and refs and _REF.fullmatch(text):
            return Ref(text[1:], span=self.span(node))
        if node.style is None and tag == "str" and _FLOAT.fullmatch(text) and re.search(r"[eE]", text):
            return self.number(text, None, node)
        call = CALL.fullmatch(text) if len(text) <= 2 * LIMITS.number_text else None
        if call and number_complaint(call.group(2)):
            return self.number(call.group(2), None, node)
        return text

    def number(self, text, value, node):
        """``value`` (read from ``text`` when None), or None after reporting it out of range."""
        complaint = number_complaint(text.replace("_", ""), value)
        if complaint:
            self.error(complaint, node, expected=NUMBER_RANGE, hint="see docs/limits.md")
            return None
        return float(text) if value is None else value

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

    def choice_or_scalar(self, node, what):
        """A value, or a design-space choice written as a list of values (docs/language.md)."""
        if not isinstance(node, SequenceNode):
            return self.scalar(node, what)
        values = [self.scalar(n, what) for n in self.sequence(node, what)]
        if len(values) < 2:
            self.error(f"{what} must be a single value, or a choice of two or more", node, expected="e.g. [48, 96]")
        return None if len(values) < 2 or None in values else Choice(tuple(values), span=self.span(node))

    def method_choice(self, node):
        """``method: [adapter, {method: compacter, n: 4}, none]``: one of these methods."""
        options = []
        for item in self.sequence(node, "method"):
            if isinstance(item, MappingNode):
                pairs = self.mapping(item, "a method option")
                m = next((v for k, _, v in pairs if k == "method"), None)
                options.append(Option(m and self.text(m, "method"), tuple(self.params(
                    [p for p in pairs if p[0] != "method"], "option")), span=self.span(item)))
            else:
                options.append(Option(self.text(item, "method"), span=self.span(item)))
        if len(options) < 2:
            self.error("a method choice needs at least two options", node, expected="a list such as [lite, none]")
        return Choice(tuple(options), span=self.span(node)) if len(options) >= 2 else None

    def params(self, pairs, what) -> list[Param]:
        out = []
        for key, key_node, value_node in pairs:
            value = self.choice_or_scalar(value_node, f"{what} parameter '{key}'")
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
        return node.value if self.tag_ok(node) and self.bounded(node, what) else []

    def bounded(self, node, what) -> bool:
        """False (reported) when a list or mapping has more than ``LIMITS.statements`` entries."""
        if len(node.value) <= LIMITS.statements:
            return True
        item = node.value[LIMITS.statements]
        self.error(f"{what} has {len(node.value):,} entries", item if isinstance(item, Node) else item[0],
                   expected=f"at most {LIMITS.statements:,} (docs/limits.md)")
        return False

    def lets(self, node) -> tuple[Param, ...]:
        out = []
        for key, key_node, value_node in self.mapping(node, "let"):
            if not _NAME.fullmatch(key):
                self.error(f"let name {key!r} is not a name", key_node, expected="a name such as r")
                continue
            value = self.choice_or_scalar(value_node, f"let {key}")
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
        method = (None if method_node is None else self.method_choice(method_node)
                  if isinstance(method_node, SequenceNode) else self.text(method_node, "method"))
        rest = []
        for key, key_node, value_node in pairs:
            if key in ("at", "method"):
                continue
            near = did_you_mean(key, ("at", "method"))
            if near and key not in _param_names():
                self.error(f"unknown key '{key}' in a site", key_node,
                           expected="at, method and the method's parameters", hint=near)
                continue
            rest.append((key, key_node, value_node))
        params = self.params(rest, "site")
        address = self.address(at, "at")
        if address is None:
            return None
        return Statement(address, method, tuple(params), span=self.span(node),
                         method_span=self.span(method_node) if method_node is not None else None)


def _param_names() -> set[str]:
    return {key for cls, _ in METHOD_PARAMS.values() for key in schema(cls)}


def _is_null(node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _TAG + "null"


class Refused(Exception):
    """YAML that the spec reader refuses (too deep, an alias, two documents), with its place."""

    def __init__(self, message, mark, hint=None):
        super().__init__(message)
        self.message, self.mark, self.hint = message, mark, hint


_RESOLVER = yaml.SafeLoader("")  # only its resolve(): the tag a plain scalar, list or mapping gets


def _attach(stack, node):
    parent = stack[-1]
    if isinstance(parent, SequenceNode):
        parent.value.append(node)
    elif parent.value and len(parent.value[-1]) == 1:  # the value of the last key
        parent.value[-1] = (parent.value[-1][0], node)
    else:
        parent.value.append((node,))


def compose(text: str) -> Node | None:
    """The node graph of a one-document YAML text, built from the parser's events without recursion.

    Raises :class:`Refused` for nesting deeper than ``LIMITS.yaml_depth``, for an alias and for a
    second document, and PyYAML's errors for text that is not YAML.
    """
    root, stack, documents = None, [], 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise Refused("not valid YAML: a spec is a single document, this is a second", event.start_mark,
                              "remove the second '---' and what follows it")
        elif isinstance(event, yaml.AliasEvent):
            parent = stack[-1] if stack else None
            if isinstance(parent, MappingNode) and parent.value and len(parent.value[-1]) == 1 \
                    and parent.value[-1][0].tag == _TAG + "merge":
                raise Refused("merge keys (<<) are not supported", parent.value[-1][0].start_mark,
                              "use `extends` to build on a spec")
            raise Refused(f"YAML aliases (*{event.anchor}) are not supported", event.start_mark, _ALIAS_HINT)
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            stack.pop().end_mark = event.end_mark
        elif isinstance(event, (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            scalar = isinstance(event, yaml.ScalarEvent)
            cls = ScalarNode if scalar else SequenceNode if isinstance(event, yaml.SequenceStartEvent) else MappingNode
            tag = event.tag
            if tag is None or tag == "!":
                tag = _RESOLVER.resolve(cls, event.value if scalar else None, event.implicit)
            if scalar:
                node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
            else:
                if len(stack) >= LIMITS.yaml_depth:
                    raise Refused(f"lists and mappings nested more than {LIMITS.yaml_depth} deep", event.start_mark,
                                  "a spec needs four levels: the spec, sites, a site, a value (docs/limits.md)")
                node = cls(tag, [], event.start_mark, None, flow_style=event.flow_style)
            if stack:
                _attach(stack, node)
            else:
                root = node
            if not scalar:
                stack.append(node)
    return root


def _yaml_problem(e: Exception, source, lines: _Lines, text: str) -> Problem:
    if isinstance(e, Refused):
        return Problem(e.message, Span(source, *lines.at(e.mark.index)), hint=e.hint)
    if not isinstance(e, yaml.YAMLError):  # PyYAML's scanner lets chr() fail on "\U00110000"
        bad = next((m for m in re.finditer(r"\\U([0-9A-Fa-f]{8})", text) if int(m.group(1), 16) > 0x10FFFF), None)
        return Problem("an escape in a string is not a valid character" if bad else "the text is not readable as YAML",
                       Span(source, *lines.at(bad.start())) if bad else None,
                       expected="\\U followed by at most 0010FFFF" if bad else None)
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    if mark is not None and mark.index >= len(text.rstrip()) and getattr(e, "context_mark", None):
        mark = e.context_mark  # "unexpected end": show where the unclosed thing opened
    span = Span(source, *lines.at(mark.index)) if mark else None
    if isinstance(e, yaml.reader.ReaderError):
        span = Span(source, *lines.at(e.position))
        return Problem(f"the text contains a character YAML does not allow: {chr(e.character)!r}"
                       if isinstance(e.character, int) else "the text is not readable as YAML", span)
    context = getattr(e, "context", None)
    if context == "while scanning an alias":
        return Problem("not valid YAML: '*' starts an alias here", Span(source, *lines.at(e.context_mark.index)),
                       hint=_ALIAS_HINT)
    message = getattr(e, "problem", None) or str(e)
    return Problem(f"not valid YAML: {message}", span, hint=context)


def parse_yaml(text: str, source: str | None = None, meta: dict | None = None) -> tuple[Spec, list[Problem]]:
    """The Spec a YAML text says, and the problems found reading it.

    ``meta``, if given, receives the spans of the backbone and extends entries.
    """
    lines = _Lines(text)
    try:
        root = compose(text)
    except (yaml.YAMLError, Refused, ValueError, OverflowError) as e:
        return Spec(source=source), [_yaml_problem(e, source, lines, text)]
    reader = _Reader(source, lines)
    spec = reader.spec(root)
    if meta is not None:
        meta.update(reader.meta)
    return spec, reader.problems
