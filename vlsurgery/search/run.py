"""Search a design space: enumerate, count exactly, filter by a budget, sort, keep the Pareto front.

    >>> from vlsurgery.spec import parse_space
    >>> space = parse_space("backbone tiny-bart\\nencoder.ffn: adapter r=(8|16|32)")
    >>> [(r.choices["#1 r"], r.trainable) for r in search_space(space, budget="3%").results]
    [('8', 1104)]

Members are enumerated lazily and counted by :class:`~vlsurgery.search.counter.Counter`; only the
members that pass the budget are kept (as option indices, a few bytes each), and with ``top`` only
the best ``top`` of them.  Order: most trainable parameters first (the richest designs that fit),
ties in the order the space lists them.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

from vlsurgery.errors import UsageError
from vlsurgery.planning import names_a_file
from vlsurgery.search.budget import Preference, parse_budget, parse_preference
from vlsurgery.search.counter import Counter, MemberCount
from vlsurgery.spec.ir import Spec
from vlsurgery.spec.space import Space

#: Members one search enumerates at most (about an hour in the worst case): docs/limits.md.
MAX_SEARCH = 10 ** 7
#: Designs one search keeps at most without ``top`` (the largest; the rest are counted).
MAX_LISTED = 100_000


@dataclass(frozen=True)
class Result:
    """One design that passed: its option indices, the choices in words and its exact counts."""

    index: tuple[int, ...]
    choices: dict
    count: MemberCount
    space: Space = field(repr=False, compare=False)

    @property
    def trainable(self) -> int:
        return self.count.trainable

    @property
    def total(self) -> int:
        return self.count.total

    @property
    def trainable_percent(self) -> float:
        return self.count.trainable_percent

    @property
    def spec(self) -> Spec:
        return self.space.member(self.index)


@dataclass
class Outcome:
    """Everything a search found: the kept results and what happened to the rest."""

    results: list
    members: int
    over_budget: int = 0
    under_minimum: int = 0
    invalid: dict = field(default_factory=dict)   # error message -> how many members
    not_listed: int = 0                            # fit, but beyond --top (or MAX_LISTED)
    backbone: str = ""


def as_space(space) -> Space:
    """A Space from a Space, a Spec, a path (``lib:NAME`` too) or spec text."""
    from vlsurgery.spec.loader import load_space, parse_space

    if isinstance(space, Space):
        return space
    if isinstance(space, Spec):
        return Space.of(space)
    if names_a_file(space):  # the rule `count` and `plan` use
        return load_space(space)
    if isinstance(space, (str, bytes)):
        return parse_space(space)
    raise UsageError(f"expected a Space, a Spec, a path or spec text, got {type(space).__name__}")


def search_space(space, backbone=None, *, budget=None, minimum=None, top: int | None = None,
                 pareto=(), max_members: int = MAX_SEARCH, max_listed: int = MAX_LISTED) -> Outcome:
    """Every member of ``space`` within ``budget`` (and at least ``minimum``), counted exactly.

    ``budget``/``minimum``: ``"3%"``, ``"2.5M"``, a count or a :class:`Budget`; ``top``: keep the
    ``top`` largest; ``pareto``: preferences (``"r:desc"``...) for the Pareto front on
    (fewer trainable parameters, each preference), empty for none.
    """
    space = as_space(space)
    if len(space) > max_members:
        raise UsageError(f"the space has {len(space):,} members; a search enumerates at most {max_members:,}: "
                         "fix some choices or split the space")
    if top is not None and top < 1:
        raise UsageError(f"--top must be at least 1, got {top}")
    high = None if budget is None else parse_budget(budget)
    low = None if minimum is None else parse_budget(minimum)
    prefs = [parse_preference(p) if not isinstance(p, Preference) else p for p in pareto]
    ranks = [_ranker(space, p) for p in prefs]
    counter = Counter(space, backbone)
    outcome = Outcome([], len(space), backbone=counter.backbone.name)
    kept = []
    order = itertools.count()
    for idx in space.indices():
        c = counter(idx)
        if c.error is not None:
            outcome.invalid[c.error] = outcome.invalid.get(c.error, 0) + 1
            continue
        if high is not None and not high.admits_above(c.trainable, c.trainable_percent):
            outcome.over_budget += 1
            continue
        if low is not None and not low.admits_below(c.trainable, c.trainable_percent):
            outcome.under_minimum += 1
            continue
        item = (c.trainable, -next(order), idx, c)
        if ranks:
            _add_to_front(kept, item, tuple(r(idx) for r in ranks))
        elif len(kept) < (top or max_listed):
            heapq.heappush(kept, item)
        else:  # keep the largest: memory stays bounded however many members fit
            heapq.heappushpop(kept, item)
            outcome.not_listed += 1
    if ranks:
        kept = [entry[2] for entry in kept]
        outcome.not_listed = max(0, len(kept) - top) if top else 0
    kept.sort(key=lambda t: (-t[0], -t[1]))
    kept = kept[:top] if top else kept
    outcome.results = [Result(idx, space.choices(idx), c, space) for _, _, idx, c in kept]
    return outcome


def search(space, backbone=None, *, budget=None, minimum=None, top=None, pareto=()):
    """Yield ``(spec, count)`` for every member of ``space`` that fits (see :func:`search_space`);
    ``count`` has ``trainable``, ``total`` and ``trainable_percent``."""
    for r in search_space(space, backbone, budget=budget, minimum=minimum, top=top, pareto=pareto).results:
        yield r.spec, r.count


def _ranker(space: Space, pref: Preference):
    """option index -> rank (higher is better) for the axis a preference names."""
    matches = [k for k, a in enumerate(space.axes)
               if a.label == pref.axis or a.label.split(" ", 1)[-1] == pref.axis or a.label == "$" + pref.axis]
    if len(matches) != 1:
        labels = ", ".join(a.label for a in space.axes) or "none"
        raise UsageError(f"--prefer {pref.axis}: {'no' if not matches else 'more than one'} axis of the space "
                         f"is called that (axes: {labels}); name it as the table's header does")
    k = matches[0]
    options = space.axes[k].options
    numeric = all(isinstance(o, (int, float)) and not isinstance(o, bool) for o in options)
    rank = [o if numeric else i for i, o in enumerate(options)]  # words: the order written
    sign = 1 if pref.descending else -1
    return lambda idx: sign * rank[idx[k]]


def _dominates(a, b) -> bool:
    """``a`` = (trainable, ranks) is at least as good as ``b`` everywhere and better somewhere."""
    return a[0] <= b[0] and all(x >= y for x, y in zip(a[1], b[1])) and (a[0], a[1]) != (b[0], b[1])


def _add_to_front(front: list, item, ranks) -> None:
    """Keep ``front`` the members no other member seen so far dominates (as few trainable
    parameters or fewer, as good or better on every preference, strictly better somewhere);
    streaming, so memory is the size of the front, not of the space."""
    entry = (item[0], ranks, item)
    if any(_dominates(f, entry) for f in front):
        return
    front[:] = [f for f in front if not _dominates(entry, f)] + [entry]
