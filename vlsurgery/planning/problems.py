"""Problems found while planning, collected and folded: the same problem on many sites is one error.

    >>> issues = Problems()
    >>> for i in range(3):
    ...     issues.add("r=7 must be divisible by heads=4", None, f"encoder[{i}].ffn")
    >>> issues.problems()[0].message
    'r=7 must be divisible by heads=4 (at encoder[0:3].ffn)'
"""

from __future__ import annotations

from pathlib import Path

from vlsurgery.errors import Problem, Span
from vlsurgery.render import group_paths


class Problems:
    """Collects problems; identical ones (same place, same message) are merged, listing their sites."""

    def __init__(self):
        self.items: dict[tuple, list[str]] = {}

    def add(self, message: str, span: Span | None, site: str | None = None, *, severity="error",
            expected=None, hint=None):
        sites = self.items.setdefault((message, span, severity, expected, hint), [])
        if site and site not in sites:
            sites.append(site)

    def add_problem(self, problem: Problem, site: str | None = None):
        self.add(problem.message, problem.span, site, severity=problem.severity, expected=problem.expected,
                 hint=problem.hint)

    def problems(self) -> list[Problem]:
        out = []
        for (message, span, severity, expected, hint), sites in self.items.items():
            if sites:
                message = f"{message} (at {compact_paths(sites)})"
            out.append(Problem(message, span, expected=expected, hint=hint, severity=severity))
        return sorted(out, key=lambda p: (p.span.source or "", p.span.line, p.span.column) if p.span else ("", 0, 0))


def compact_paths(paths: list[str]) -> str:
    """``encoder[0].ffn, encoder[1].ffn, encoder[2].ffn`` -> ``encoder[0:3].ffn``."""
    groups = group_paths(paths)
    return ", ".join(groups[:4]) + (f" and {len(groups) - 4} more" if len(groups) > 4 else "")


def source_texts(problems) -> dict:
    """Source texts for rendering problems with their lines (files named by the spans)."""
    texts = {}
    for p in problems:
        source = p.span.source if p.span else None
        if source and source not in texts:
            try:
                texts[source] = Path(source).read_text()
            except (OSError, ValueError):
                pass
    return texts
