"""The DSL reader's rules for design-space choices (mixed into the reader's lark Transformer).

``(a|b)`` after ``=`` is a value choice, ``(lite r=96 | none)`` after ``:`` a method choice,
``(self_attn|ffn)`` a segment choice and ``[0:6 | 6:12]`` a layer-selection choice.  Every
choice inside one address becomes one axis: the address's options are every combination of its
segments' choices, in the order written (``encoder[0:6 | 6:12].(ffn|self_attn)`` is one axis of
four addresses).  See docs/language.md, "Design spaces".
"""

from __future__ import annotations

import math

from lark import v_args

from vlsurgery.errors import Problem, Span
from vlsurgery.spec.choice import MAX_OPTIONS, Choice, Option
from vlsurgery.spec.ir import Address, Segment


def _span(source, meta) -> Span | None:
    if getattr(meta, "empty", False):  # an empty option, `( | lite)`: nothing to point at
        return None
    return Span(source, meta.line, meta.column, meta.end_line, meta.end_column)


def options_of(part) -> tuple:
    """The options of a part that may be a choice (a plain part is its only option)."""
    return part.options if isinstance(part, Choice) else (part,)


class ChoiceRules:
    """Transformer rules building :class:`Choice` s; the host class provides ``self.source``,
    ``self.problems`` and ``self.limit_problems`` (how many of them are size limits)."""

    BAD = object()  # a value that was reported as out of range (shared with the reader)

    def _too_many(self, parts, span) -> bool:
        """Whether the combinations of ``parts`` exceed a choice's bound (then reported): counted
        before they are built, since each segment choice multiplies them."""
        n = math.prod(len(options_of(p)) for p in parts)
        if n <= MAX_OPTIONS:
            return False
        self.problems.append(Problem(f"an address with {n:,} combinations of its choices", span,
                                     expected=f"at most {MAX_OPTIONS} options per choice (docs/limits.md)",
                                     hint="split it into several statements"))
        self.limit_problems += 1
        return True

    @v_args(meta=True)
    def name_choice(self, meta, children):
        return Choice(tuple((str(c),) for c in children), span=_span(self.source, meta))

    @v_args(meta=True)
    def value_choice(self, meta, children):
        return self.BAD if self.BAD in children else Choice(tuple(children), span=_span(self.source, meta))

    def layer_list(self, children):
        return tuple(children)

    @v_args(meta=True)
    def option(self, meta, children):
        method, *params = children
        if None in params:  # a value out of range, reported: not an empty option (space.py checks those)
            return self.BAD
        return Option(None if method is None else str(method), tuple(params), span=_span(self.source, meta))

    @v_args(meta=True)
    def method_choice(self, meta, children):
        if self.BAD in children:  # reported; the statement stands without a method (the spec is never used)
            return None
        return Choice(tuple(children), span=_span(self.source, meta))

    @v_args(meta=True)
    def layers(self, meta, children):
        if not any(isinstance(c, tuple) for c in children):
            return tuple(children)
        first = tuple(c for c in children if not isinstance(c, tuple))  # lark inlines the first list
        return Choice((first,) + tuple(c for c in children if isinstance(c, tuple)), span=_span(self.source, meta))

    @v_args(meta=True)
    def segment(self, meta, children):
        names, layers = children
        span = _span(self.source, meta)
        if self._too_many((names, layers), span):  # reported; the spec is never used
            return Segment(options_of(names)[0], options_of(layers)[0], span=span)
        if isinstance(names, Choice) or isinstance(layers, Choice):  # expanded by address()
            return Choice(tuple(Segment(n, lay, span=span) for n in options_of(names) for lay in options_of(layers)),
                          span=span)
        return Segment(names, layers, span=span)

    @v_args(meta=True)
    def address(self, meta, children):
        span = _span(self.source, meta)
        if not any(isinstance(c, Choice) for c in children):
            return Address(tuple(children), span=span)
        if self._too_many(children, span):  # reported; the spec is never used
            return Address(tuple(options_of(c)[0] for c in children), span=span)
        options = [()]
        for c in children:
            options = [o + (seg,) for o in options for seg in options_of(c)]
        return Choice(tuple(Address(o, span=span) for o in options), span=span)
