"""Measuring: interleaved timing rounds, ratios with their spread, and exact work from the profiler.

Every time ratio compares variants measured in the same process, interleaved: a *round* runs each
variant once (in a rotated order, so that no variant always follows the same one), and the ratio of
a variant to the baseline is taken per round; the report gives the median of those per-round
ratios and their spread (min-max).  Absolute times are kept for context only.

Work is measured exactly by ``torch.profiler``: the number of calls of every ``aten::`` operator in
one step (deterministic), and the peak, during that step, of the bytes allocated within the step and
not yet freed, from the profiler's time-ordered allocation and free events (frees of blocks that
existed before the step, such as the previous step's gradients, are not seen, equally for every
variant).
"""

from __future__ import annotations

import cProfile
import pstats
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from torch.profiler import ProfilerActivity, profile


@dataclass
class Ratio:
    """A ratio variant/baseline: the median over rounds of the per-round ratios, and their range."""

    median: float
    low: float
    high: float
    rounds: int

    @classmethod
    def of(cls, values: list[float]) -> "Ratio":
        return cls(statistics.median(values), min(values), max(values), len(values))

    def text(self, digits: int = 3) -> str:
        return f"{self.median:.{digits}f} ({self.low:.{digits}f}-{self.high:.{digits}f})"

    def as_dict(self) -> dict:
        return {"median": round(self.median, 4), "low": round(self.low, 4), "high": round(self.high, 4),
                "rounds": self.rounds}


@dataclass
class Timing:
    """Seconds per call of each variant, per round, and the ratios against ``baseline``."""

    baseline: str
    seconds: dict[str, list[float]] = field(default_factory=dict)

    def median_seconds(self, name: str) -> float:
        return statistics.median(self.seconds[name])

    def ratio(self, name: str, baseline: str | None = None) -> Ratio:
        base = self.seconds[baseline or self.baseline]
        return Ratio.of([a / b for a, b in zip(self.seconds[name], base)])


def interleaved(fns: dict[str, Callable[[], object]], *, baseline: str, rounds: int, repeats: int = 1,
                warmup: int = 1) -> Timing:
    """Time every function in ``fns`` over ``rounds`` interleaved rounds (``repeats`` calls each,
    the median kept per round), after ``warmup`` untimed calls of each."""
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    timing = Timing(baseline, {name: [] for name in names})
    for k in range(rounds):
        order = names[k % len(names):] + names[:k % len(names)]
        for name in order:
            samples = []
            for _ in range(repeats):
                start = time.perf_counter()
                fns[name]()
                samples.append(time.perf_counter() - start)
            timing.seconds[name].append(statistics.median(samples))
    return timing


@dataclass
class Work:
    """What one call does, exactly: aten operator calls by name and the peak bytes allocated."""

    ops: Counter
    peak_bytes: int

    def excess_over(self, other: "Work") -> dict[str, int]:
        """Operators this call runs more often than ``other`` (name -> extra calls)."""
        return {name: n - other.ops.get(name, 0) for name, n in sorted(self.ops.items())
                if n > other.ops.get(name, 0)}


def profile_work(fn: Callable[[], object]) -> Work:
    """Profile one call of ``fn`` (call it once before, so that lazy state such as optimizer moments
    exists): aten operator counts and the peak of live allocated bytes during the call."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    ops = Counter()
    for event in prof.events():
        if event.name.startswith("aten::"):
            ops[event.name] += 1
    allocations = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                         if e.name() == "[memory]")
    live = peak = 0
    for _, nbytes in allocations:
        live += nbytes
        peak = max(peak, live)
    return Work(ops, peak)


def top_operators(fn: Callable[[], object], limit: int = 8) -> list[tuple[str, float, int]]:
    """Where the time of one call goes: (operator, self CPU ms, calls), most expensive first."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    return [(e.key, e.self_cpu_time_total / 1000.0, e.count) for e in rows[:limit]]


def operator_layouts(fn: Callable[[], object]) -> Counter:
    """(operator, input shapes, input strides) -> calls, for one call of ``fn`` (profiler, exact).

    Two calls with equal counters run the same kernels on the same shapes and memory layouts: a
    time difference between them is not in the operators (e.g. no matrix product reads a
    transposed or non-contiguous input in one and not the other)."""
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        fn()
    return Counter((e.name, str(e.input_shapes), str(e.structured_input_strides))
                   for e in prof.events() if e.name.startswith("aten::"))


def layout_differences(a: Counter, b: Counter) -> int:
    """How many operator calls of one counter have no same-layout twin in the other."""
    return sum(((a - b) + (b - a)).values())


def python_calls(fn: Callable[[], object]) -> int:
    """Python function calls (cProfile, exact) during one call of ``fn``: the interpreter's share of
    the work, which the operator counts do not see."""
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        fn()
    finally:
        profiler.disable()
    return pstats.Stats(profiler).total_calls
