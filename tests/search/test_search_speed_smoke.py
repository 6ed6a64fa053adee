"""The search-speed benchmark runs (its number is measured by ``python -m benchmarks.search_speed``,
not asserted here: timings on a shared CI machine are not a test)."""

from benchmarks.search_speed import measure


def test_benchmark_counts_every_design():
    result = measure("bart-base", rounds=1)
    assert result["designs"] == 8640 and result["designs_per_s"] > 0
