"""The fast path for a statement that no other statement touches: count one site per shape.

When a statement group is a single statement that places a method, every site it names ends up
with exactly that statement's method and parameters (nothing merges into it, nothing overrides
it), and a site's parameters depend only on that configuration and the site's widths
(``registry.count(hp, dims)``).  So the group's part is, for each distinct (kind, widths) among
its sites, the planner's own :func:`~vlsurgery.planning.resolve.configure` on one representative
times the number of such sites; each representative's result is memoised across members by
(method, parameter values, kind, widths).  Anything unusual (``none``, a problem, a method that
does not fit a site, shared tensors that disagree) returns None and the caller runs the full
planner, which reports it.
"""

from __future__ import annotations

from vlsurgery.planning.problems import Problems
from vlsurgery.planning.resolve import configure, targets
from vlsurgery.spec.ir import Ref


def statement_part(stmt, backbone, named: dict, memo: dict):
    """``(site parameters, shared tensors)`` of one statement alone, or None: use the planner."""
    if any(isinstance(p.value, Ref) for p in stmt.params):
        return None
    issues = Problems()
    sites = targets(stmt.target, backbone.profile, named, backbone.name, issues)  # each site once
    if issues.items or not sites:
        return None
    shapes: dict = {}
    for slot in sites:
        n, first = shapes.get((slot.kind, slot.dims), (0, slot))
        shapes[(slot.kind, slot.dims)] = (n + 1, first)
    values = tuple(sorted((p.key, type(p.value).__name__, p.value) for p in stmt.params))
    total, shared = 0, {}
    for (kind, dims), (n, slot) in shapes.items():
        key = (stmt.method, values, kind, dims)
        if key not in memo:
            site = configure(slot, stmt, issues)
            memo[key] = None if site is None else (site.trainable, dict(site.shared))
        if memo[key] is None:
            return None
        total += n * memo[key][0]
        for name, numel in memo[key][1].items():
            if shared.setdefault(name, numel) != numel:
                return None
    return total, shared
