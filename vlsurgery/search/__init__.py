"""The search stage: every member of a design space counted exactly, filtered by a budget.

    search(space, backbone=None, budget="3%", minimum=None, top=None, pareto=()) -> (spec, count)...
    search_space(...) -> Outcome          # the kept results and what was filtered out

Modules: ``counter`` (incremental exact counting of members: docs/search.md), ``budget``
(``3%``/``2.5M`` budgets and ``r:desc`` preferences), ``run`` (enumerate, filter, sort, Pareto).
No torch: counting is the planner's arithmetic.
"""

from __future__ import annotations

import sys
import types

from vlsurgery.search.budget import Budget, Preference, parse_budget, parse_preference
from vlsurgery.search.counter import Counter, MemberCount
from vlsurgery.search.run import MAX_SEARCH, Outcome, Result, as_space, search, search_space


class _CallablePackage(types.ModuleType):
    def __call__(self, space, backbone=None, *, budget=None, minimum=None, top=None, pareto=()):
        """Yield ``(spec, count)`` for every member of ``space`` that fits: :func:`search`."""
        return search(space, backbone, budget=budget, minimum=minimum, top=top, pareto=pareto)


sys.modules[__name__].__class__ = _CallablePackage

__all__ = ["Budget", "Counter", "MAX_SEARCH", "MemberCount", "Outcome", "Preference", "Result", "as_space",
           "parse_budget", "parse_preference", "search", "search_space"]
