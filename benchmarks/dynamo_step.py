"""Item 5: torch.compile of the compiled model: its train-step time against eager, and graph breaks.

One VL-PET-large model (visual inputs, train mode); the eager step calls the model, the compiled step
calls ``torch.compile(model)`` (inductor by default).  The first compiled call (compilation) is
timed apart; then both steps are timed interleaved.  Graph breaks are read from dynamo's counters;
where there are any, ``torch._dynamo.explain`` says where (the frame of each break), so that a break
inside the generated layer code can be told from one in transformers.
"""

from __future__ import annotations

import time

import torch

from benchmarks.measure import interleaved
from benchmarks.workloads import Shape, build_variants, step_fn


def _where(model, batch) -> list[str]:
    explanation = torch._dynamo.explain(model)(**batch)
    out = []
    for reason in explanation.break_reasons:
        frame = reason.user_stack[-1] if reason.user_stack else None
        place = f"{frame.filename}:{frame.lineno} in {frame.name}" if frame else "unknown frame"
        out.append(f"{reason.reason.splitlines()[0][:160]} at {place}")
    return out


def run_dynamo(backbone: str, shape: Shape, rounds: int, backend: str = "inductor") -> dict:
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    variants = build_variants(backbone, shape)
    model, batch = variants.compiled, variants.batch
    del variants
    optimized = torch.compile(model, backend=backend)
    eager_step = step_fn(model, lambda: batch)
    compiled_step_fn = step_fn(optimized, lambda: batch)
    start = time.perf_counter()
    try:
        compiled_step_fn()
    except Exception as error:  # noqa: BLE001 - report any compiler failure instead of aborting the run
        return {"backbone": backbone, "backend": backend, "failed": f"{type(error).__name__}: {str(error)[:300]}"}
    first = time.perf_counter() - start
    breaks = sum(counters["graph_break"].values())
    eager_step()
    timing = interleaved({"torch.compile": compiled_step_fn, "eager": eager_step}, baseline="eager",
                         rounds=rounds, warmup=1)
    result = {"backbone": backbone, "backend": backend, "shape": shape.text_form(),
              "first_call_s": round(first, 1), "graph_breaks": breaks,
              "seconds": {name: round(timing.median_seconds(name), 4) for name in timing.seconds},
              "time": {"torch.compile/eager": timing.ratio("torch.compile").as_dict()}}
    if breaks:
        model.eval()
        result["break_sites"] = _where(model, batch)
    torch._dynamo.reset()
    return result
