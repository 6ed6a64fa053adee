"""The grammar (``grammars/vls.lark``) as a parser, and its errors in our own words.

The LALR parser is built once, on first use, and reused.  :func:`scan` finds the statement
separators that the DSL reader's error recovery cuts the text at; :func:`syntax_problem` says what
was found and what the grammar expected there, in words rather than terminal names;
:func:`number_complaint` applies the language's numeric range (``LIMITS.number``).
"""

from __future__ import annotations

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from vlsurgery import caches
from vlsurgery.errors import LIMITS, Problem, Span
from vlsurgery.resources import grammar_path

#: Words that start a declaration; everywhere else they are ordinary names.
KEYWORDS = ("backbone", "extends", "let", "projector", "train")


@caches.memoize("spec.parser")
def parser() -> Lark:
    """The LALR parser for ``.vls`` text (start ``start``) and for lone addresses (start ``address``)."""
    return Lark(grammar_path().read_text(encoding="utf-8"), parser="lalr", lexer="contextual",
                start=["start", "address"], propagate_positions=True, maybe_placeholders=True)


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


NUMBER_RANGE = f"a number between -10**{len(str(LIMITS.number)) - 1} and 10**{len(str(LIMITS.number)) - 1}"


def number_complaint(text: str, value=None) -> str | None:
    """Why a number is refused, or None: written with more than ``LIMITS.number_text`` characters,
    beyond ``LIMITS.number`` (integers and floats alike: inf and nan included), or a non-zero
    float that rounds to 0.  ``value`` is the number ``text`` means (read from ``text`` if None)::

        >>> number_complaint("1e400")
        "the number '1e400' is out of range: it must be a finite number"
        >>> number_complaint("-1" + "0" * 19)
        "the number '-10000000000000000000' is out of range"
        >>> number_complaint("96") is None
        True
    """
    shown = text if len(text) <= 24 else f"{text[:16]}... ({len(text):,} characters)"
    if len(text) > LIMITS.number_text:
        return f"the number '{shown}' is too long"
    if value is None:
        value = float(text) if any(c in text for c in ".eE") else int(text)
    if not abs(value) < float("inf"):  # nan too
        return f"the number '{shown}' is out of range: it must be a finite number"
    if not abs(value) <= LIMITS.number:
        return f"the number '{shown}' is out of range"
    if value == 0 and isinstance(value, float) and any(c in "123456789" for c in text.lower().split("e")[0]):
        return f"the number '{shown}' is too small: it rounds to 0"
    return None


def line_col(text: str, pos: int) -> tuple[int, int]:
    return text.count("\n", 0, pos) + 1, pos - (text.rfind("\n", 0, pos) + 1) + 1


def syntax_problem(e: UnexpectedInput, text: str, source) -> tuple[Problem, int]:
    """A Problem for a lark error, and the offset it happened at."""
    hint = None
    if isinstance(e, UnexpectedCharacters):
        pos, ch = e.pos_in_stream, text[e.pos_in_stream]
        line, col = line_col(text, pos)
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
        line, col = line_col(text, pos)
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
    if str(token) == ":" and "RSQB" in expected and ":" in text[max(0, text.rfind("[", 0, pos)):pos]:
        return Problem("a layer range has no step", span, expected="']' to end the range (start:stop)",
                       hint="list the layers instead: encoder[0,2,4] rather than encoder[0:6:2]"), pos
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
