"""The DSL reader: text -> IR, with syntax errors in our own words (:mod:`vlsurgery.spec.grammar`).

One :class:`lark.Transformer` builds the IR directly; spans come from lark's
``propagate_positions``.  A syntax error does not stop the reader: the offending statement is
blanked out (replaced by spaces, so every position stays right) and the text is parsed again, so
one run reports every broken statement::

    >>> parse_dsl("encoder.ffn adapter\\nlet r = ")[1][0].message
    "unexpected name 'adapter'"
"""

from __future__ import annotations

import re

from lark import Token, Transformer, v_args
from lark.exceptions import UnexpectedEOF, UnexpectedInput

from vlsurgery.errors import Problem, Span
from vlsurgery.spec.grammar import blank, line_col, parser, scan, syntax_problem
from vlsurgery.methods.params import call_text
from vlsurgery.spec.ir import Address, Index, Param, Projector, Range, Ref, Segment, Spec, Statement

# --------------------------------------------------------------------------------------------
# Strings


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}
_HEX = {"x": 2, "u": 4, "U": 8}


def unquote(literal: str) -> tuple[str, str | None]:
    """The text of a quoted string token, and a complaint about a bad escape (or None)."""
    body, out, i = literal[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\" or i + 1 >= len(body):
            out.append(ch)
            i += 1
            continue
        code = body[i + 1]
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
            i += 2
        elif code in _HEX:
            digits = body[i + 2:i + 2 + _HEX[code]]
            if len(digits) != _HEX[code] or not re.fullmatch(r"[0-9A-Fa-f]+", digits):
                out.append(ch)  # not an escape after all: kept as written, like unknown escapes
                i += 1
                continue
            value = int(digits, 16)
            if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
                return "", f"escape '\\{code}{digits}' is not a valid character"
            out.append(chr(value))
            i += 2 + _HEX[code]
        else:  # unknown escapes stay as written, as in Python: "C:\models" keeps its backslash
            out.append(ch)
            i += 1
    return "".join(out), None


def quote(text: str) -> str:
    """A double-quoted DSL string literal for any text; ``unquote(quote(s)) == s``."""
    out = []
    for ch in text:
        if ch in '\\"':
            out.append("\\" + ch)
        elif ch in "\n\t\r":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


# --------------------------------------------------------------------------------------------
# Tree -> IR


def _span(source, meta_or_token) -> Span:
    m = meta_or_token
    return Span(source, m.line, m.column, m.end_line, m.end_column)


class _ToIR(Transformer):
    """Builds IR objects; declarations come out as ``(kind, value, span)`` for :func:`_assemble`."""

    def __init__(self, source: str | None):
        super().__init__()
        self.source = source
        self.problems: list[Problem] = []

    def _string(self, token: Token) -> str:
        text, complaint = unquote(str(token))
        if complaint:
            self.problems.append(Problem(complaint, _span(self.source, token), expected="a valid escape: "
                                         "\\n \\t \\r \\\\ \\\" \\' \\xHH \\uHHHH \\UHHHHHHHH"))
        return text

    def _word(self, token: Token) -> str:
        return self._string(token) if token.type == "STRING" else str(token)

    # values -----------------------------------------------------------------------------
    def int(self, children):
        return int(children[0])

    def float(self, children):
        return float(children[0])

    def string(self, children):
        return self._string(children[0])

    def word(self, children):
        return {"true": True, "false": False}.get(str(children[0]), str(children[0]))

    def ref(self, children):
        return Ref(str(children[0])[1:], span=_span(self.source, children[0]))

    def call(self, children):
        """``normal(0.02)``: kept as the text ``normal(0.02)``, which is also how YAML writes it."""
        return call_text(str(children[0]), float(children[1]))

    @v_args(meta=True)
    def param(self, meta, children):
        return Param(str(children[0]), children[1], span=_span(self.source, meta))

    # addresses --------------------------------------------------------------------------
    def one(self, children):
        return (str(children[0]),)

    def any(self, children):
        return None

    def alternatives(self, children):
        return tuple(str(c) for c in children)

    def index(self, children):
        return Index(int(children[0]))

    def range(self, children):
        start, stop = children
        return Range(None if start is None else int(start), None if stop is None else int(stop))

    def layers(self, children):
        return tuple(children)

    @v_args(meta=True)
    def segment(self, meta, children):
        return Segment(children[0], children[1], span=_span(self.source, meta))

    @v_args(meta=True)
    def address(self, meta, children):
        return Address(tuple(children), span=_span(self.source, meta))

    # statements -------------------------------------------------------------------------
    @v_args(meta=True)
    def backbone(self, meta, children):
        return ("backbone", self._word(children[0]), _span(self.source, meta))

    @v_args(meta=True)
    def extends(self, meta, children):
        return ("extends", self._word(children[0]), _span(self.source, meta))

    @v_args(meta=True)
    def let(self, meta, children):
        return ("let", Param(str(children[0]), children[1], span=_span(self.source, meta)), None)

    @v_args(meta=True)
    def projector(self, meta, children):
        return ("projector", Projector(tuple(children), span=_span(self.source, meta)), _span(self.source, meta))

    @v_args(meta=True)
    def train(self, meta, children):
        return ("train", tuple(children), _span(self.source, meta))

    @v_args(meta=True)
    def site(self, meta, children):
        address, method, *params = children
        return ("site", Statement(address, None if method is None else str(method), tuple(params),
                                  span=_span(self.source, meta),
                                  method_span=None if method is None else _span(self.source, method)), None)

    def start(self, children):
        return children


def _assemble(items, source, problems, first: dict[str, Span]) -> Spec:
    """One Spec from the declarations in written order; repeated singletons are errors.

    ``first`` receives the span of the backbone, extends and projector declarations.
    """
    fields: dict = {"lets": [], "train": [], "statements": []}
    seen_train: dict[Address, Address] = {}
    for kind, value, span in items:
        if kind in ("backbone", "extends", "projector"):
            if kind in first:
                problems.append(Problem(f"duplicate {kind} declaration", span, expected=f"one {kind} per spec",
                                        hint=f"the first is at {first[kind]}"))
                continue
            first[kind] = span
            fields[kind] = value
        elif kind == "let":
            fields["lets"].append(value)
        elif kind == "train":
            for address in value:
                if address in seen_train:
                    problems.append(Problem("train target listed twice", address.span, severity="warning",
                                            hint=f"first listed at {seen_train[address].span}"))
                seen_train.setdefault(address, address)
                fields["train"].append(address)
        else:
            fields["statements"].append(value)
    return Spec(**fields, source=source)


def parse_dsl(text: str, source: str | None = None, meta: dict | None = None) -> tuple[Spec, list[Problem]]:
    """The Spec a DSL text says, and the syntax problems found (empty when it parses).

    ``meta``, if given, receives the spans of the backbone/extends/projector declarations and the
    comments as ``(line, text)`` (the IR keeps neither; the formatter and ``load`` use them).
    """
    problems: list[Problem] = []
    meta = {} if meta is None else meta
    work, (seps, comments) = text, scan(text)
    meta["comments"] = [(line_col(text, pos)[0], body) for pos, body in comments]
    for _ in range(200):
        try:
            tree = parser().parse(work, start="start")
            break
        except (UnexpectedInput, UnexpectedEOF) as e:
            problem, pos = syntax_problem(e, work, source)
            problems.append(problem)
            blanked = blank(work, pos, seps)
            if blanked == work:
                meta["syntax_errors"] = len(problems)
                return Spec(source=source), problems
            work = blanked
    else:
        meta["syntax_errors"] = len(problems)
        return Spec(source=source), problems
    builder = _ToIR(source)
    items = builder.transform(tree)
    meta["syntax_errors"] = len(problems) + len(builder.problems)  # before _assemble adds its own
    spec = _assemble(items, source, builder.problems, meta)
    return spec, problems + builder.problems


def parse_address(text: str, span: Span | None) -> tuple[Address | None, list[Problem]]:
    """An address written inside another text (a YAML scalar) starting at ``span``."""
    source = span.source if span else None
    try:
        tree = parser().parse(text, start="address")
    except (UnexpectedInput, UnexpectedEOF) as e:
        problem, _ = syntax_problem(e, text, source)
        if span is not None and problem.span is not None:
            shift = span.column - 1
            s = problem.span
            problem = Problem(f"bad address {text!r}: {problem.message}",
                              Span(source, span.line, s.column + shift, span.line, (s.end_column or s.column + 1) + shift),
                              problem.expected, problem.hint)
        return None, [problem]
    builder = _ToIR(source)
    address = builder.transform(tree)
    if span is not None:
        address = _shift(address, span)
    return address, builder.problems


def _shift(address: Address, at: Span) -> Address:
    """Move spans parsed from a lone address onto the line and column where it sits in its file."""
    def move(s: Span) -> Span:
        return Span(at.source, at.line, s.column + at.column - 1, at.line, (s.end_column or s.column) + at.column - 1)
    segments = tuple(Segment(seg.names, seg.layers, span=move(seg.span)) for seg in address.segments)
    return Address(segments, span=move(address.span))
