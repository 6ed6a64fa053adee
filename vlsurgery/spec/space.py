"""Design spaces: a spec with choices, and its members, each an ordinary :class:`Spec`.

    >>> from vlsurgery.spec.dsl import parse_dsl
    >>> space = Space.of(parse_dsl("encoder.ffn: adapter r=(8|16) granularity=(none|large)")[0])
    >>> len(space), [a.label for a in space.axes]
    (4, ['#1 granularity', '#1 r'])
    >>> from vlsurgery.spec.printer import statement_text
    >>> statement_text(space.member((1, 0)).statements[0])
    'encoder.ffn: adapter granularity=large r=8'

The axes are the choices in the order :func:`~vlsurgery.spec.choice.choices_of` numbers them (a
``let`` whose value is a choice is one axis, shared by every ``$ref``); members are the product of
the axes, enumerated lazily (``itertools.product`` over option indices, last axis fastest).  A
bare spec is a space of one member.  Bounds (docs/limits.md): ``MAX_AXES`` axes, ``MAX_OPTIONS``
options per choice, ``MAX_MEMBERS`` members.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

from vlsurgery.errors import Problem
from vlsurgery.spec.choice import MAX_OPTIONS, Choice, Option, choices_of, has_choices, space_problem
from vlsurgery.spec.ir import Param, Spec, Statement
from vlsurgery.spec.validate import validate

MAX_AXES = 32
MAX_MEMBERS = 10 ** 9


@dataclass(frozen=True)
class Axis:
    """One choice: ``label`` (``$r``, ``#2 method``, ``#1 granularity``...) and its options."""

    label: str
    choice: Choice

    @property
    def options(self) -> tuple:
        return self.choice.options

    def option_text(self, i: int) -> str:
        """Option ``i`` as the DSL writes it (``96``, ``lite r=96``, ``encoder[0:6].ffn``)."""
        from vlsurgery.spec.printer import address_text, params_text, value_text

        o = self.choice.options[i]
        if isinstance(o, Option):
            return " ".join(filter(None, [o.method, params_text(o.params)])) or "(no method)"
        if hasattr(o, "segments"):
            return address_text(o)
        return value_text(o)


class Space:
    """A spec with choices: ``len(space)`` members, ``space.member(indices)``, ``iter(space)``."""

    def __init__(self, spec: Spec, axes: tuple[Axis, ...]):
        self.spec = spec
        self.axes = axes
        self._where = {id(a.choice): k for k, a in enumerate(axes)}

    @classmethod
    def of(cls, spec: Spec) -> "Space":
        return cls(spec, tuple(Axis(label, choice) for label, choice, _ in choices_of(spec)))

    def __len__(self) -> int:
        return math.prod(len(a.options) for a in self.axes)

    @property
    def size(self) -> int:
        return len(self)

    def indices(self):
        """Every member's option indices, lazily, last axis fastest."""
        return itertools.product(*(range(len(a.options)) for a in self.axes))

    def __iter__(self):
        return (self.member(idx) for idx in self.indices())

    def samples(self) -> list[tuple[int, ...]]:
        """Members that together use every option of every axis: the first member, then for each
        axis each other option with the other axes at their first (what ``check`` checks)."""
        base = (0,) * len(self.axes)
        return [base] + [base[:k] + (i,) + base[k + 1:]
                         for k, a in enumerate(self.axes) for i in range(1, len(a.options))]

    def describe(self) -> list[str]:
        """``$r  one of 48 | 96 | 192`` for each axis (what ``check`` prints)."""
        width = max((len(a.label) for a in self.axes), default=0)
        return [f"{a.label.ljust(width)}  one of {' | '.join(a.option_text(i) for i in range(len(a.options)))}"
                for a in self.axes]

    def choices(self, idx) -> dict[str, str]:
        """``{axis label: option text}`` of a member."""
        return {a.label: a.option_text(i) for a, i in zip(self.axes, idx)}

    def member(self, idx) -> Spec:
        """The ordinary spec with option ``idx[k]`` of axis ``k`` in place of every choice."""
        pick = lambda c: c.options[idx[self._where[id(c)]]]  # noqa: E731 - a one-line lookup
        sub = lambda ps: tuple(Param(p.key, pick(p.value), span=p.span) if isinstance(p.value, Choice) else p
                               for p in ps)  # noqa: E731
        statements = []
        for s in self.spec.statements:
            target = pick(s.target) if isinstance(s.target, Choice) else s.target
            method, params = s.method, sub(s.params)
            if isinstance(method, Choice):
                option = pick(method)
                method, params = option.method, option.params + params
            statements.append(Statement(target, method, params, span=s.span, method_span=s.method_span))
        projector = self.spec.projector and replace(self.spec.projector, params=sub(self.spec.projector.params))
        return replace(self.spec, lets=sub(self.spec.lets), projector=projector, statements=tuple(statements))


def structure_problems(spec: Spec) -> list[Problem]:
    """What makes a spec an invalid space, before its members are looked at."""
    out = []
    found = choices_of(spec)
    for label, choice, _ in found:
        if len(choice.options) > MAX_OPTIONS:
            out.append(Problem(f"a choice with {len(choice.options):,} options", choice.span,
                               expected=f"at most {MAX_OPTIONS} options per choice (docs/limits.md)"))
        seen = set()
        for o in choice.options:
            key = (type(o), o)  # by type too: True == 1 in Python, but r=(true|1) are two options
            if key in seen:
                out.append(Problem(f"an option is listed twice in this choice ({label})", choice.span,
                                   expected="each option once"))
                break
            seen.add(key)
        for o in choice.options:
            for p in getattr(o, "params", ()):
                if isinstance(p.value, Choice):
                    out.append(Problem("a choice inside a method choice", p.value.span,
                                       expected="a plain value: write each combination as its own option",
                                       hint="or move the choice after the parentheses: (adapter | compacter) r=(8|16)"))
    for s in spec.statements:
        if isinstance(s.method, Choice):
            if any(o.method is None and not o.params for o in s.method.options):
                # it would silently mean "keep the site's method" (the default adapter on an
                # empty site); no method here is spelled `none`
                out.append(Problem("an empty option in a method choice", s.method.span,
                                   expected="a method, parameters, or `none`",
                                   hint="write `none` for no method, e.g. (none | lite r=4)"))
            outer = {p.key for p in s.params}
            for o in s.method.options:
                both = sorted(outer & {p.key for p in o.params})
                if both:
                    out.append(Problem(f"parameter '{both[0]}' is set both inside the method choice and after it",
                                       o.span, expected="each parameter once per statement"))
    for a in spec.train:
        if isinstance(a, Choice):
            out.append(Problem("a train target cannot be a choice", a.span, expected="a plain address"))
    if len(found) > MAX_AXES:
        out.append(Problem(f"a design space with {len(found)} choices", found[MAX_AXES][1].span,
                           expected=f"at most {MAX_AXES} choices (docs/limits.md)"))
    elif math.prod(len(c.options) for _, c, _ in found) > MAX_MEMBERS:
        size = math.prod(len(c.options) for _, c, _ in found)
        out.append(Problem(f"a design space with {size:,} members", found[0][1].span,
                           expected=f"at most {MAX_MEMBERS:,} members (docs/limits.md)",
                           hint="split it, or fix some choices"))
    return out


def validate_space(spec: Spec, *, strict_refs: bool | None = None, where: dict | None = None) -> list[Problem]:
    """Every problem of a space: its structure, then every value of every axis (the first member,
    and for each axis each other option with the other axes at their first), each problem once."""
    out = structure_problems(spec)
    if any(p.severity == "error" for p in out):
        return out
    space = Space.of(spec)
    base = (0,) * len(space.axes)
    seen = {}
    for idx in space.samples():
        for p in validate(space.member(idx), strict_refs=strict_refs, where=where):
            key = (p.message, p.span, p.severity)
            if key in seen:
                continue
            if idx != base and p.severity == "error":
                changed = next(k for k, i in enumerate(idx) if i)
                axis = space.axes[changed]
                which = f"with {axis.label} = {axis.option_text(idx[changed])}"
                p = replace(p, hint="; ".join(filter(None, [p.hint, which])))
            seen[key] = p
    return out + list(seen.values())


def checked(spec: Spec, space: bool, **kw) -> list[Problem]:
    """:func:`validate_space` where a space is welcome, else :func:`validate`, and a space where
    one design is expected is one error that says so."""
    if space:
        return validate_space(spec, **kw)
    return [space_problem(spec)] if has_choices(spec) else validate(spec, **kw)


__all__ = ["checked", "Axis", "MAX_AXES", "MAX_MEMBERS", "MAX_OPTIONS", "Space", "space_problem", "structure_problems",
           "validate_space"]
