"""The DSL reader: lark grammar (``grammars/vls.lark``) -> IR, with syntax errors in our own words.

The LALR parser is built once, on first use, and reused.  One :class:`lark.Transformer` builds the
IR directly; spans come from lark's ``propagate_positions``.  A syntax error does not stop the
reader: the offending statement is blanked out (replaced by spaces, so every position stays
right) and the text is parsed again, so one run reports every broken statement::

    >>> parse_dsl("encoder.ffn adapter\\nlet r = ")[1][0].message
    "unexpected name 'adapter'"
"""

from __future__ import annotations

import functools
import re

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from vlsurgery.errors import Problem, Span
from vlsurgery.resources import grammar_path
from vlsurgery.spec.ir import Address, Index, Param, Projector, Range, Ref, Segment, Spec, Statement

#: Words that start a declaration; everywhere else they are ordinary names.
KEYWORDS = ("backbone", "extends", "let", "projector", "train")


@functools.lru_cache(maxsize=None)
def parser() -> Lark:
    """The LALR parser for ``.vls`` text (start ``start``) and for lone addresses (start ``address``)."""
    return Lark(grammar_path().read_text(encoding="utf-8"), parser="lalr", lexer="contextual",
                start=["start", "address"], propagate_positions=True, maybe_placeholders=True)


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


# --------------------------------------------------------------------------------------------
# Syntax errors in words


_TERMINAL_WORDS = {
    "NAME": "a name", "INT": "an integer", "FLOAT": "a number", "STRING": "a quoted string",
    "REF": "a $reference", "PATH": "a name or a path", "_SEP": "';' or a new line", "$END": "the end of the text",
}


def _terminal_words(name: str) -> str:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    try:
        pattern = parser().get_terminal(name).pattern
    except KeyError:
        return name.lower()
    return f"'{pattern.value}'" if pattern.type == "str" else name.lower()


def _expected(names) -> str:
    names = set(names) - {"WS", "COMMENT"}
    words = []
    keywords = {n for n in names if _terminal_words(n).strip("'") in KEYWORDS}
    if keywords or {"NAME", "STAR", "LBRACE", "_SEP"} <= names:  # the start of a statement
        names -= keywords | {"STAR", "LBRACE", "NAME"}
        words.append("a statement (backbone, extends, let, projector, train, or an address such as encoder.ffn:)")
    if {"INT", "FLOAT", "STRING", "NAME", "REF"} <= names:
        names -= {"INT", "FLOAT", "STRING", "NAME", "REF"}
        words.append("a value (a number, true/false, a name, a quoted string or a $reference)")
    words += sorted({_terminal_words(n) for n in names}, key=lambda w: (len(w) != 3 or w[0] != "'", w))
    return words[0] if len(words) == 1 else "one of: " + ", ".join(words)


def _found(token: Token) -> str:
    if token.type == "$END":
        return "end of text"
    if token.type == "_SEP":
        return "end of line" if "\n" in token else "';'"
    if token.type == "CHAR":
        return f"character {str(token)!r}"
    kind = {"NAME": "name ", "INT": "integer ", "FLOAT": "number ", "STRING": "string ", "PATH": ""}.get(token.type, "")
    return f"{kind}'{token}'"


def _line_col(text: str, pos: int) -> tuple[int, int]:
    return text.count("\n", 0, pos) + 1, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _syntax_problem(e: UnexpectedInput, text: str, source) -> tuple[Problem, int]:
    """A Problem for a lark error, and the offset it happened at."""
    hint = None
    if isinstance(e, UnexpectedCharacters):
        pos, ch = e.pos_in_stream, text[e.pos_in_stream]
        line, col = _line_col(text, pos)
        span = Span(source, line, col, line, col + 1)
        if ch in "\"'":
            message, hint = "unterminated string", "close the string on the same line"
        elif ch == "$":
            message, hint = "'$' must be followed by the name of a let binding", "write $name, e.g. r=$r"
        else:
            message = f"unexpected character {ch!r}"
            if ch == "=":
                hint = "parameters are written key=value, with a name before '='"
        return Problem(message, span, expected=_expected(e.allowed), hint=hint), pos
    token = e.token if isinstance(e, UnexpectedToken) else Token("$END", "")
    expected = e.expected if isinstance(e, UnexpectedToken) else getattr(e, "expected", ())
    if token.type == "$END":
        pos = len(text.rstrip())
        line, col = _line_col(text, pos)
        span = Span(source, line, col, line, col + 1)
    else:
        pos = token.start_pos
        span = Span(source, token.line, token.column, token.end_line, token.end_column)
        if token.type == "PATH" and "PATH" not in expected:
            # lark re-lexed a character no terminal of this place accepts with its whole grammar;
            # the PATH it found is not what the user meant: blame the first character.
            token = Token("CHAR", token[0], start_pos=token.start_pos, line=token.line, column=token.column)
        if token.type in ("_SEP", "CHAR"):
            span = Span(source, token.line, token.column, token.line, token.column + 1)
    if token.type == "CHAR" and token == "$":
        message = "'$' must be followed by the name of a let binding"
        return Problem(message, span, expected=_expected(expected), hint="write $name, e.g. r=$r"), pos
    if "COLON" in expected and token.type in ("NAME", "EQUAL"):
        hint = "a statement is `address: method key=value ...`; is the ':' after the address missing?"
    elif (token.type == "EQUAL" or (token.type == "CHAR" and token == "=")) and "NAME" in expected:
        hint = "parameters are written key=value, with a name before '='"
    return Problem(f"unexpected {_found(token)}", span, expected=_expected(expected), hint=hint), pos


def scan(text: str) -> tuple[list[int], list[tuple[int, str]]]:
    """Offsets of statement separators, and ``(offset, text)`` of comments, outside strings."""
    seps, comments, i, n = [], [], 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "#":
            end = text.find("\n", i)
            end = n if end < 0 else end
            comments.append((i, text[i:end].rstrip("\r")))
            i = end
        elif ch in "\"'":
            i += 1
            while i < n and text[i] not in (ch, "\n"):
                i += 2 if text[i] == "\\" and text[i + 1:i + 2] not in ("", "\n") else 1
            i += text[i:i + 1] == ch
        else:
            if ch in ";\n":
                seps.append(i)
            i += 1
    return seps, comments


def _blank(text: str, pos: int, seps: list[int]) -> str:
    """The text with the statement around ``pos`` replaced by spaces (new lines kept)."""
    sep_set = set(seps)
    before = [s for s in seps if s < pos]
    start = (before[-1] + 1) if before else 0
    end = pos if pos in sep_set else next((s for s in seps if s >= pos), len(text))
    return text[:start] + re.sub(r"[^\n]", " ", text[start:end]) + text[end:]


def parse_dsl(text: str, source: str | None = None, meta: dict | None = None) -> tuple[Spec, list[Problem]]:
    """The Spec a DSL text says, and the syntax problems found (empty when it parses).

    ``meta``, if given, receives the spans of the backbone/extends/projector declarations and the
    comments as ``(line, text)`` (the IR keeps neither; the formatter and ``load`` use them).
    """
    problems: list[Problem] = []
    meta = {} if meta is None else meta
    work, (seps, comments) = text, scan(text)
    meta["comments"] = [(_line_col(text, pos)[0], body) for pos, body in comments]
    for _ in range(200):
        try:
            tree = parser().parse(work, start="start")
            break
        except (UnexpectedInput, UnexpectedEOF) as e:
            problem, pos = _syntax_problem(e, work, source)
            problems.append(problem)
            blanked = _blank(work, pos, seps)
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
        problem, _ = _syntax_problem(e, text, source)
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
