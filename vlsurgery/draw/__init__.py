"""The draw stage: a design (or two, with their diff) as a self-contained SVG or HTML picture.

    draw(spec, backbone=None, other=None) -> str        # SVG text; other: a second design, diffed
    draw_html(...) -> str                               # the same inside an HTML page

Works from the plan (no torch, no weights); see :mod:`vlsurgery.draw.layout` for the layout.
"""

from __future__ import annotations

from vlsurgery.draw.layout import html, svg
from vlsurgery.lazy import callable_package


def _designs(spec, backbone, other):
    from vlsurgery.diff.compute import diff
    from vlsurgery.planning import count_plan, plan

    if other is None:
        p = plan(spec, backbone)
        return [(_title(spec, p.spec), p, count_plan(p))], None
    d = diff(spec, other, backbone)
    return [(d.a_title or "A", d.a_count.plan, d.a_count), (d.b_title or "B", d.b_count.plan, d.b_count)], d


def _title(given, spec) -> str:
    return str(given) if isinstance(given, str) and "\n" not in given else (spec.source or "design")


def draw(spec, backbone=None, other=None) -> str:
    """SVG text of ``spec`` on ``backbone`` (None: the spec's own); with ``other``, both side by
    side and the sites that differ outlined."""
    designs, d = _designs(spec, backbone, other)
    return svg(designs, d)


def draw_html(spec, backbone=None, other=None) -> str:
    designs, d = _designs(spec, backbone, other)
    return html(designs, d, title=" vs ".join(t for t, _, _ in designs))


callable_package(__name__, draw)  # vlsurgery.draw(...) is draw(...)

__all__ = ["draw", "draw_html", "html", "svg"]
