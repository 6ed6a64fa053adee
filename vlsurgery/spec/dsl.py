"""The DSL reader: text -> IR, with syntax errors in our own words (:mod:`vlsurgery.spec.grammar`).

One :class:`lark.Transformer` builds the IR directly; spans come from lark's
``propagate_positions``.  A syntax error does not stop the reader: parsing resumes after the
offending statement (statements are independent), so one run reports every broken statement, up
to ``LIMITS.syntax_errors``; numbers outside ``LIMITS.number`` are errors at their position::

    >>> parse_dsl("encoder.ffn adapter\\nlet r = ")[1][0].message
    "unexpected name 'adapter'"
"""

from __future__ import annotations

import bisect
import re
from dataclasses import replace

from lark import Token, Transformer, v_args
from lark.exceptions import UnexpectedEOF, UnexpectedInput

from vlsurgery.errors import LIMITS, Problem, Span
from vlsurgery.spec.grammar import NUMBER_RANGE, line_col, number_complaint, parser, scan, syntax_problem
from vlsurgery.methods.params import call_text
from vlsurgery.spec.ir import Address, Index, Param, Projector, Range, Ref, Segment, Spec, Statement
from vlsurgery.spec.choice import Choice
from vlsurgery.spec.choice_rules import ChoiceRules

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


class _ToIR(ChoiceRules, Transformer):
    """Builds IR objects; declarations come out as ``(kind, value, span)`` for :func:`_assemble`."""

    def __init__(self, source: str | None):
        super().__init__()
        self.source = source
        self.problems: list[Problem] = []
        self.limit_problems = 0  # of self.problems, those of a size limit: well-formed text, not syntax

    def _string(self, token: Token) -> str:
        text, complaint = unquote(str(token))
        if complaint:
            self.problems.append(Problem(complaint, _span(self.source, token), expected="a valid escape: "
                                         "\\n \\t \\r \\\\ \\\" \\' \\xHH \\uHHHH \\UHHHHHHHH"))
        return text

    def _word(self, token: Token) -> str:
        return self._string(token) if token.type == "STRING" else str(token)

    # values -----------------------------------------------------------------------------
    def _number(self, token: Token):
        """The number a token means, or ``BAD`` (reported) when it is out of range."""
        complaint = number_complaint(str(token))
        if complaint:
            self.problems.append(Problem(complaint, _span(self.source, token), expected=NUMBER_RANGE,
                                         hint="see docs/limits.md"))
            return BAD
        return int(token) if token.type == "INT" else float(token)

    def int(self, children):
        return self._number(children[0])

    def float(self, children):
        return self._number(children[0])

    def string(self, children):
        return self._string(children[0])

    def word(self, children):
        return {"true": True, "false": False}.get(str(children[0]), str(children[0]))

    def ref(self, children):
        return Ref(str(children[0])[1:], span=_span(self.source, children[0]))

    def call(self, children):
        """``normal(0.02)``: kept as the text ``normal(0.02)``, which is also how YAML writes it."""
        number = self._number(children[1])
        return BAD if number is BAD else call_text(str(children[0]), float(number))

    @v_args(meta=True)
    def param(self, meta, children):
        return None if children[1] is BAD else Param(str(children[0]), children[1], span=_span(self.source, meta))

    # addresses --------------------------------------------------------------------------
    def one(self, children):
        return (str(children[0]),)

    def any(self, children):
        return None

    def alternatives(self, children):
        return tuple(str(c) for c in children)

    def index(self, children):
        value = self._number(children[0])
        return Index(0 if value is BAD else value)  # a bad index is reported: the spec is never used

    def range(self, children):
        start, stop = (None if c is None else self._number(c) for c in children)
        return Range(None if start is BAD else start, None if stop is BAD else stop)

    # layers, segments, addresses and choices: ChoiceRules

    # statements -------------------------------------------------------------------------
    @v_args(meta=True)
    def backbone(self, meta, children):
        return ("backbone", self._word(children[0]), _span(self.source, meta))

    @v_args(meta=True)
    def extends(self, meta, children):
        return ("extends", self._word(children[0]), _span(self.source, meta))

    @v_args(meta=True)
    def let(self, meta, children):
        if children[1] is BAD:
            return ("skip", None, None)
        return ("let", Param(str(children[0]), children[1], span=_span(self.source, meta)), None)

    @v_args(meta=True)
    def projector(self, meta, children):
        params = tuple(c for c in children if c is not None)
        return ("projector", Projector(params, span=_span(self.source, meta)), _span(self.source, meta))

    @v_args(meta=True)
    def train(self, meta, children):
        return ("train", tuple(children), _span(self.source, meta))

    @v_args(meta=True)
    def site(self, meta, children):
        address, method, *params = children
        params = [p for p in params if p is not None]
        if not isinstance(method, (str, Token, type(None))):  # a method choice
            return ("site", Statement(address, method, tuple(params), span=_span(self.source, meta),
                                      method_span=method.span), None)
        return ("site", Statement(address, None if method is None else str(method), tuple(params),
                                  span=_span(self.source, meta),
                                  method_span=None if method is None else _span(self.source, method)), None)

    def start(self, children):
        return children


BAD = ChoiceRules.BAD  # a value that was reported as out of range


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
        elif kind == "skip":
            continue
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
    meta = {} if meta is None else meta
    seps, comments = scan(text)
    newlines = [i for i, ch in enumerate(text) if ch == "\n"] if comments else []
    meta["comments"] = [(bisect.bisect_left(newlines, pos) + 1, body) for pos, body in comments]
    too_many = _too_many_statements(text, seps, source)
    if too_many:
        meta["syntax_errors"] = 1
        return Spec(source=source), [too_many]
    trees, problems = _parse_statements(text, seps, source)
    builder = _ToIR(source)
    items = [item for tree in trees for item in builder.transform(tree)]
    # before _assemble adds its own; a choice over its size limit is well-formed text, not a syntax error
    meta["syntax_errors"] = len(problems) + len(builder.problems) - builder.limit_problems
    spec = _assemble(items, source, builder.problems, meta)
    return spec, problems + builder.problems


def _too_many_statements(text: str, seps: list[int], source) -> Problem | None:
    """A problem when the text has more than ``LIMITS.statements`` statements (not parsed then)."""
    if len(seps) < LIMITS.statements:
        return None
    count, start = 0, 0
    for end in seps + [len(text)]:
        body = text[start:end].strip()
        if body and not body.startswith("#"):
            count += 1
            if count > LIMITS.statements:
                line, col = line_col(text, start + len(text[start:end]) - len(text[start:end].lstrip()))
                return Problem(f"more than {LIMITS.statements:,} statements", Span(source, line, col),
                               expected=f"at most {LIMITS.statements:,} statements in one spec (docs/limits.md)")
        start = end + 1
    return None


def _parse_statements(text: str, seps: list[int], source) -> tuple[list, list[Problem]]:
    """Parse trees of the text's statements, and one problem per broken statement.

    Statements are independent, so after an error the text before the broken statement is parsed
    on its own and parsing resumes after it: each character is parsed at most about twice, and
    recovery stops after ``LIMITS.syntax_errors`` errors.
    """
    trees, problems, pending = [], [], [(0, len(text))]
    while pending:
        start, end = pending.pop()
        if start >= end:
            continue
        base = line_col(text, start)
        try:
            trees.append((start, _shift_tree(parser().parse(text[start:end], start="start"), base)))
            continue
        except (UnexpectedInput, UnexpectedEOF) as e:
            problem, local = syntax_problem(e, text[start:end], source)
        problems.append(_shift_problem(problem, base))
        if len(problems) >= LIMITS.syntax_errors:
            line = line_col(text, start + local)[0]
            problems.append(Problem(f"too many syntax errors: stopped reading after {LIMITS.syntax_errors}",
                                    Span(source, line, 1), expected="fewer errors (docs/limits.md)",
                                    hint="fix these and check again", severity="warning"))
            break
        pos = start + local
        at = bisect.bisect_left(seps, pos)
        stmt_start = max(start, seps[at - 1] + 1 if at else 0)
        stmt_end = max(seps[at] if at < len(seps) else len(text), start + 1)
        pending += [(stmt_end, end), (start, stmt_start)]  # the part before first
    return [tree for _, tree in sorted(trees, key=lambda t: t[0])], problems


def _moved(line: int, column: int, base: tuple[int, int]) -> tuple[int, int]:
    return line + base[0] - 1, column + base[1] - 1 if line == 1 else column


def _shift_tree(tree, base: tuple[int, int]):
    """Move the positions of a tree parsed from a piece of text starting at ``base`` (line, column)."""
    if base == (1, 1):
        return tree
    for sub in tree.iter_subtrees():
        if not sub.meta.empty:
            m = sub.meta
            (m.line, m.column), (m.end_line, m.end_column) = _moved(m.line, m.column, base), \
                _moved(m.end_line, m.end_column, base)
        for tok in sub.children:
            if isinstance(tok, Token) and tok.line is not None:
                (tok.line, tok.column), (tok.end_line, tok.end_column) = _moved(tok.line, tok.column, base), \
                    _moved(tok.end_line, tok.end_column, base)
    return tree


def _shift_problem(problem: Problem, base: tuple[int, int]) -> Problem:
    s = problem.span
    if s is None or base == (1, 1):
        return problem
    line, column = _moved(s.line, s.column, base)
    end = _moved(s.end_line, s.end_column, base) if s.end_line is not None else (None, None)
    return replace(problem, span=Span(s.source, line, column, *end))


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
    if span is not None and isinstance(address, Choice):  # a choice of addresses: each one moved
        address = Choice(tuple(_shift(a, span) for a in address.options), span=_shift(address.options[0], span).span)
    elif span is not None:
        address = _shift(address, span)
    return address, builder.problems


def _shift(address: Address, at: Span) -> Address:
    """Move spans parsed from a lone address onto the line and column where it sits in its file."""
    def move(s: Span) -> Span:
        return Span(at.source, at.line, s.column + at.column - 1, at.line, (s.end_column or s.column) + at.column - 1)
    segments = tuple(Segment(seg.names, seg.layers, span=move(seg.span)) for seg in address.segments)
    return Address(segments, span=move(address.span))
