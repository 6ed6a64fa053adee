"""Budgets (``3%``, ``2.5M``, ``120k``, ``900000``) and preference orders (``r:desc``).

    >>> parse_budget("3%"), parse_budget("2.5M"), parse_budget("120k"), parse_budget("1,000")
    (Budget(value=3.0, percent=True), Budget(value=2500000, percent=False), Budget(value=120000, percent=False), Budget(value=1000, percent=False))
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vlsurgery.errors import UsageError

_SUFFIX = {"": 1, "k": 10 ** 3, "m": 10 ** 6, "g": 10 ** 9, "b": 10 ** 9}
_BUDGET = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([kKmMgGbB%]?)\s*")


@dataclass(frozen=True)
class Budget:
    """A bound on trainable parameters: a count, or a percentage of the model's total."""

    value: float
    percent: bool

    def admits_above(self, trainable: int, percent: float) -> bool:
        """The member is at or below this bound (``--budget``)."""
        return percent <= self.value if self.percent else trainable <= self.value

    def admits_below(self, trainable: int, percent: float) -> bool:
        """The member is at or above this bound (``--min``)."""
        return percent >= self.value if self.percent else trainable >= self.value

    def __str__(self) -> str:
        return f"{self.value:g}%" if self.percent else f"{int(self.value):,}"


def parse_budget(text) -> Budget:
    """``3%`` (of the total), ``2.5M``, ``120k``, ``1,000`` or a plain count; a UsageError otherwise."""
    if isinstance(text, Budget):
        return text
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return Budget(int(text), False)
    m = _BUDGET.fullmatch(str(text).replace(",", "").replace("_", "")) if len(str(text)) <= 32 else None
    if not m:
        raise UsageError(f"cannot read the budget {str(text)[:32]!r}: write a percentage of the total (3%) "
                         "or a count (2.5M, 120k, 900000)")
    number, suffix = float(m.group(1)), m.group(2).lower()
    if suffix == "%":
        if number > 100:
            raise UsageError(f"a budget of {number:g}% is more than the whole model: write at most 100%")
        return Budget(number, True)
    return Budget(int(round(number * _SUFFIX[suffix])), False)


@dataclass(frozen=True)
class Preference:
    """``AXIS[:desc|asc]``: which options of an axis are better (``desc``: larger values first)."""

    axis: str
    descending: bool = True


def parse_preference(text: str) -> Preference:
    axis, _, order = str(text).partition(":")
    order = order.strip().lower() or "desc"
    if not axis.strip() or order not in ("desc", "asc"):
        raise UsageError(f"cannot read the preference {text!r}: write AXIS:desc or AXIS:asc, e.g. r:desc")
    return Preference(axis.strip(), order == "desc")
