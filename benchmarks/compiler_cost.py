"""Item 3: what compiling costs: compile time against layer count, and ``count`` on the largest presets.

Compile time: BART-family models of one width with n layers in all (n/2 encoder + n/2 decoder
layers, VL-PET-large compiled onto them).  *Cold* clears the compiler's caches first, so it includes
tracing (once per layer class: an encoder and a decoder class, whatever n is); *warm* is a second
compile onto a fresh model of the same shape, with the traces cached.  The model's own
construction is timed apart and is not part of either.  Linearity: a least-squares line through
(n, seconds), with the largest relative deviation of a point from it.

``count``: :func:`vlsurgery.count` of the paper's VL-PET-large spec on the largest presets (no torch,
no model built): the first call and the median of further calls.
"""

from __future__ import annotations

import gc
import statistics
import time

import vlsurgery
from vlsurgery.compiler import clear_cache
from benchmarks.workloads import fresh, vl_pet_large

COUNT_PRESETS = ("t5-3b", "t5-large", "flan-t5-large", "bart-large")


def _model(n_layers: int, width: int):
    half = max(1, n_layers // 2)
    return fresh("bart-base", encoder_layers=half, decoder_layers=half, d_model=width,
                 encoder_ffn_dim=4 * width, decoder_ffn_dim=4 * width,
                 encoder_attention_heads=max(1, width // 64), decoder_attention_heads=max(1, width // 64))


def _compile_seconds(n_layers: int, width: int, cold: bool) -> tuple[float, float]:
    start = time.perf_counter()
    model = _model(n_layers, width)
    built = time.perf_counter() - start
    if cold:
        clear_cache()
    start = time.perf_counter()
    vlsurgery.compile(str(vl_pet_large("bart-base")), model, seed=0)
    seconds = time.perf_counter() - start
    del model
    gc.collect()
    return seconds, built


def _fit(points: list[tuple[int, float]]) -> dict:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    intercept = my - slope * mx
    worst = max(abs(y - (intercept + slope * x)) / y for x, y in points) if points else 0.0
    return {"seconds_per_layer": round(slope, 5), "intercept_s": round(intercept, 4),
            "max_relative_deviation": round(worst, 3)}


def run_compile_cost(layers: list[int], width: int) -> dict:
    rows = []
    for n in layers:
        cold, built = _compile_seconds(n, width, cold=True)
        warm, _ = _compile_seconds(n, width, cold=False)
        rows.append({"layers": n, "cold_s": round(cold, 4), "warm_s": round(warm, 4), "construct_s": round(built, 3)})
    return {"width": width, "rows": rows,
            "fit_cold": _fit([(r["layers"], r["cold_s"]) for r in rows]),
            "fit_warm": _fit([(r["layers"], r["warm_s"]) for r in rows])}


def run_count_cost(presets=COUNT_PRESETS, repeats: int = 5) -> list[dict]:
    rows = []
    for preset in presets:
        spec = str(vl_pet_large("t5-base" if "t5" in preset else "bart-base"))
        times, result = [], None
        for _ in range(1 + repeats):
            start = time.perf_counter()
            result = vlsurgery.count(spec, backbone=preset)
            times.append(time.perf_counter() - start)
        rows.append({"preset": preset, "first_s": round(times[0], 4), "median_s": round(statistics.median(times[1:]), 4),
                     "trainable_percent": round(result.trainable_percent, 4)})
    return rows
