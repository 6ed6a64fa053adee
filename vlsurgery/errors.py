"""The one error hierarchy of vlsurgery.

Every error a user can trigger is a :class:`VLSurgeryError` and, at the same time, the builtin
exception that fits it (``ValueError`` for bad specs, ``LookupError`` for unknown backbones, ...),
so ``except ValueError`` in user code keeps working.

Spec errors carry :class:`Problem` objects.  A problem knows where it is (a :class:`Span`), what
was found, what was expected and, for typos, the nearest valid name.  Validation collects every
problem it finds and raises them together, so a user fixes a spec in one round trip::

    design.vls:3:18: error: unknown parameter 'hedas' for method 'adapter'
      |     encoder.self_attn: adapter hedas=4
      |                                ^^^^^
      = expected one of: activation, gate_init, gate_r, granularity, heads, init, ...
      = did you mean 'heads'?

:data:`LIMITS` bounds what one spec may cost to read (docs/limits.md): its size, its statements,
its numbers, its ``extends`` chain, and how many problems a report shows.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable, Sequence


@dataclass(frozen=True)
class Limits:
    """What reading one spec may cost; beyond these, the reader stops with a located error.

    The numbers are documented for users in docs/limits.md; a test there keeps them in step.
    """

    spec_bytes: int = 65_536            # one spec file or text, in bytes
    statements: int = 1_000             # statements of one file, and of a design with its extends merged
    extends_depth: int = 16             # files in one extends chain
    extends_name: int = 1_024           # characters of an extends name (255 per path component)
    number: int = 10 ** 18              # every number, integer or not, lies within +-number
    number_text: int = 64               # characters of a number as written
    yaml_depth: int = 32                # nested YAML lists and mappings
    syntax_errors: int = 20             # the DSL reader's error recovery stops after this many
    shown: int = 50                     # problems a report prints (the rest are counted)
    shown_line: int = 120               # characters of a source line a message quotes


LIMITS = Limits()


@dataclass(frozen=True)
class Span:
    """A region of a source text; lines and columns count from 1, ``end_column`` is exclusive."""

    source: str | None
    line: int
    column: int
    end_line: int | None = None
    end_column: int | None = None

    def __str__(self) -> str:
        return f"{self.source or '<string>'}:{self.line}:{self.column}"


def span_field():
    """A dataclass field for a source span: carried along, never part of equality or repr."""
    return field(default=None, compare=False, repr=False, hash=False)


def nearest(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The valid name closest to a misspelt one, or None when nothing is close (or the word is
    too long to be a misspelt name: comparing costs the product of the lengths)."""
    word = str(word)
    if len(word) > 100:
        return None
    matches = difflib.get_close_matches(word, sorted(c for c in set(choices) if len(c) <= 200), n=1, cutoff=cutoff)
    return matches[0] if matches else None


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec, positioned and explained."""

    message: str
    span: Span | None = None
    expected: str | None = None
    hint: str | None = None
    severity: str = "error"  # or "warning"

    def render(self, text: str | None = None, *, source_lines: Sequence[str] | None = None) -> str:
        """Format as ``file:line:col: error: ...`` with the source line and a caret under it.

        ``source_lines`` (``text.split("\\n")``) saves splitting the text again for every problem.
        """
        where = f"{self.span}: " if self.span else ""
        lines = [f"{where}{self.severity}: {self.message}"]
        if self.span and (text is not None or source_lines is not None):
            # Lines end at "\n" only, as the DSL's lexer and the YAML reader count them (splitlines()
            # would also split at form feeds and other separators); tabs show as one space so the
            # caret stays under the column it points at.
            if source_lines is None:
                source_lines = text.split("\n")
            if 1 <= self.span.line <= len(source_lines):
                width = 1
                if self.span.end_line == self.span.line and self.span.end_column:
                    width = max(1, self.span.end_column - self.span.column)
                line, column, width = _excerpt(source_lines[self.span.line - 1], self.span.column, width)
                lines.append(f"  | {line}")
                lines.append("  | " + " " * (column - 1) + "^" * width)
        if self.expected:
            lines.append(f"  = expected {self.expected}")
        if self.hint:
            lines.append(f"  = {self.hint}")
        return "\n".join(lines)


def _excerpt(line: str, column: int, width: int) -> tuple[str, int, int]:
    """A source line cut to ``LIMITS.shown_line`` characters around ``column``, and the caret's
    new column and width; "..." marks what is cut."""
    line = line.rstrip("\r").replace("\t", " ")
    keep = LIMITS.shown_line
    if len(line) <= keep:
        return line, column, width
    start = max(0, min(column - 1 - keep // 4, len(line) - keep))
    piece = line[start:start + keep]
    prefix = "..." if start else ""
    suffix = "..." if start + keep < len(line) else ""
    column = column - start + len(prefix)
    width = max(1, min(width, len(prefix) + len(piece) - column + 1))
    return prefix + piece + suffix, column, width


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A 'did you mean ...?' hint for a misspelt name, or None."""
    guess = nearest(word, choices)
    return f"did you mean '{guess}'?" if guess else None


def choices(names) -> str:
    """``expected`` text for a list of valid names: the one name, or ``one of: a, b, c``."""
    names = list(names)
    if not names:
        return "no parameters"
    return names[0] if len(names) == 1 else "one of: " + ", ".join(names)


def check_name(name, valid, what, span, out, *, expected=None, extra_hint=None) -> bool:
    """True if ``name`` is in ``valid``; else a Problem (``unknown <what> 'name'``, did-you-mean) in ``out``."""
    if name in valid:
        return True
    hint = did_you_mean(name, valid) or extra_hint
    out.append(Problem(f"unknown {what} '{name}'", span, expected=expected or choices(valid), hint=hint))
    return False


class VLSurgeryError(Exception):
    """Root of every error vlsurgery raises on purpose."""


class SpecError(VLSurgeryError, ValueError):
    """A spec (DSL or YAML) is malformed or invalid.  Holds every problem found, in source order.

    ``texts`` maps a source name to its text so that messages can quote the offending line.
    """

    def __init__(self, problems: Sequence[Problem], texts: dict[str | None, str] | None = None):
        self.problems = tuple(problems)
        self.texts = dict(texts or {})
        super().__init__(self.render())

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    def render(self) -> str:
        """Every problem (the first ``LIMITS.shown`` of them; the rest are counted), each source
        split into lines once."""
        split: dict = {}

        def lines_of(source):
            if source not in split:
                text = self.texts.get(source)
                split[source] = None if text is None else text.split("\n")
            return split[source]

        shown = self.problems[:LIMITS.shown]
        rendered = [p.render(source_lines=lines_of(p.span.source) if p.span else None) for p in shown]
        if len(self.problems) > len(shown):
            rest = len(self.problems) - len(shown)
            rendered.append(f"... and {rest} more problem{'s' if rest != 1 else ''} not shown "
                            f"(a report shows the first {LIMITS.shown}); fix these and check again")
        count = len(self.errors)
        head = f"{count} problem{'s' if count != 1 else ''} in spec" if count > 1 else None
        return "\n".join(([head] if head else []) + rendered)

    @classmethod
    def single(cls, message: str, span: Span | None = None, *, text: str | None = None, **kw) -> "SpecError":
        return cls([Problem(message, span, **kw)], {span.source if span else None: text} if text else None)


class SpecSyntaxError(SpecError):
    """The text does not follow the grammar (or is not YAML, or not text at all)."""


class SpecFileError(SpecError, OSError):
    """A spec file (or a file it extends) cannot be read."""


class BackboneError(VLSurgeryError, LookupError):
    """A backbone name, path, config or model that vlsurgery cannot use."""


class ResolutionError(SpecError):
    """A valid spec does not fit the backbone: a role matches nothing, a layer is out of range, ..."""


class CompileError(VLSurgeryError, RuntimeError):
    """Compilation failed; the model given to ``compile`` is left exactly as it was."""


class UsageError(VLSurgeryError, ValueError):
    """The Python API or the command line was called wrongly (not a problem of the spec itself)."""


class MissingExtraError(VLSurgeryError, ModuleNotFoundError):
    """An optional part of vlsurgery needs a package that is not installed; says which extra to install."""
