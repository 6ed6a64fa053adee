"""A hypothesis strategy for the members of a design space (:mod:`vlsurgery.spec.space`).

    >>> from vlsurgery.spec import parse_space
    >>> strategy = space_members(parse_space("encoder.ffn: adapter r=(8|16|32)"))

draws ``(indices, spec)`` pairs: one option per axis (shrinking towards each axis's first
option), and the ordinary spec that member is.  A space is never enumerated to draw from it.
"""

from __future__ import annotations

from hypothesis import strategies as st


def space_members(space):
    """``(indices, member spec)`` of ``space`` (a Space, or anything ``vlsurgery.search`` takes)."""
    from vlsurgery.search.run import as_space

    space = as_space(space)
    axes = st.tuples(*(st.integers(0, len(a.options) - 1) for a in space.axes))
    return axes.map(lambda idx: (idx, space.member(idx)))


__all__ = ["space_members"]
