"""Choices: the places where a design space says "one of these" (docs/language.md, "Design spaces").

A choice sits where a plain spec has one thing, and holds the options in the order written::

    r=(48|96|192)                       Choice((48, 96, 192))            a value
    encoder[0:6 | 6:12].ffn             Choice((Address..., Address...)) the statement's target
    decoder.cross_attn.v: (lite r=96 | none)
                                        Choice((Option('lite', ...), Option('none')))  the method

Every choice is one axis of the space; a ``let`` whose value is a choice is one axis shared by
every ``$ref`` to it.  ``|`` always means "one of" and always sits inside ``( )`` or ``[ ]``, so
it never meets ``{a,b}``, which means "all of these".  This module is the leaf the readers, the
printer and :mod:`vlsurgery.spec.space` share.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

from vlsurgery.errors import Problem, Span, span_field
from vlsurgery.spec.ir import Address, Param, Spec, _sorted_params

#: Options one choice may have (docs/limits.md); an address's segment choices multiply.
MAX_OPTIONS = 256


@dataclass(frozen=True)
class Option:
    """One alternative of a method choice: a method (None: keep the site's) and its parameters."""

    method: str | None
    params: tuple[Param, ...] = ()
    span: Span | None = span_field()

    def __post_init__(self):
        object.__setattr__(self, "params", _sorted_params(self.params))


@dataclass(frozen=True)
class Choice:
    """One of ``options`` (values, :class:`Address` es or :class:`Option` s), in the order written."""

    options: tuple
    span: Span | None = span_field()

    def __post_init__(self):
        object.__setattr__(self, "options", tuple(self.options))


def _param_choices(params):
    return [p.value for p in params if isinstance(p.value, Choice)]


def choices_of(spec: Spec) -> list[tuple[str, Choice, object]]:
    """Every choice of a spec as ``(label, choice, owner)`` in the order the axes are numbered:
    the lets, the projector, then each statement's target, method and parameters."""
    out = []
    for let in spec.lets:
        if isinstance(let.value, Choice):
            out.append((f"${let.key}", let.value, let))
    if spec.projector is not None:
        out += [(f"projector {p.key}", p.value, p) for p in spec.projector.params if isinstance(p.value, Choice)]
    for i, stmt in enumerate(spec.statements, 1):
        if isinstance(stmt.target, Choice):
            out.append((f"#{i} at", stmt.target, stmt))
        if isinstance(stmt.method, Choice):
            out.append((f"#{i} method", stmt.method, stmt))
        out += [(f"#{i} {p.key}", p.value, p) for p in stmt.params if isinstance(p.value, Choice)]
    return out


def has_choices(spec: Spec) -> bool:
    return bool(choices_of(spec)) or any(
        isinstance(a, Choice) or any(isinstance(s, Choice) for s in getattr(a, "segments", ())) for a in spec.train)


def option_params(choice: Choice) -> list[Param]:
    """The parameters inside a method choice's options (they may hold value choices: not allowed)."""
    return [p for o in choice.options if isinstance(o, Option) for p in o.params]


def space_problem(spec: Spec) -> Problem:
    """The error for a space given where one spec is expected."""
    found = choices_of(spec) or [("train", next(a for a in spec.train if isinstance(a, Choice)), None)]
    size = prod(len(c.options) for _, c, _ in found)
    return Problem(f"this is a design space ({len(found)} choice{'s' * (len(found) != 1)}, {size:,} members), "
                   "not a single design", found[0][1].span, expected="a spec without ( | ) choices",
                   hint="search it with `vlsurgery search`, or load it with vlsurgery.spec.load_space")


__all__ = ["Address", "Choice", "Option", "choices_of", "has_choices", "option_params", "space_problem"]
