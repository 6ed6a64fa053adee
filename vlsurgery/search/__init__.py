"""The search stage: every member of a design space counted exactly, filtered by a budget.

    search(space, backbone=None, budget="3%", minimum=None, top=None, pareto=()) -> (spec, count)...
    search_space(...) -> Outcome          # the kept results and what was filtered out

Modules: ``counter`` (incremental exact counting of members: docs/search.md), ``budget``
(``3%``/``2.5M`` budgets and ``r:desc`` preferences), ``run`` (enumerate, filter, sort, Pareto).
No torch: counting is the planner's arithmetic.
"""

from __future__ import annotations

from vlsurgery.lazy import callable_package
from vlsurgery.search.budget import Budget, Preference, parse_budget, parse_preference
from vlsurgery.search.counter import Counter, MemberCount
from vlsurgery.search.run import MAX_SEARCH, Outcome, Result, as_space, search, search_space


callable_package(__name__, search)  # vlsurgery.search(...) is search(...)

__all__ = ["Budget", "Counter", "MAX_SEARCH", "MemberCount", "Outcome", "Preference", "Result", "as_space",
           "parse_budget", "parse_preference", "search", "search_space"]
