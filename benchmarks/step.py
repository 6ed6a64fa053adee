"""Item 1: the VL-PET-large training step, compiled against the floor, hand-fused and paper-style.

All four variants hold equal weights (copied from the compiled model) and run the same batch, in
train mode (dropout on), interleaved.  Reported: step-time ratios with their spread, the peak bytes
allocated during one step and their ratios, and the exact aten operator counts (the compiled step
must run no operator more often than the hand-fused one).
"""

from __future__ import annotations

import gc

import torch

from benchmarks.measure import (interleaved, layout_differences, operator_layouts, profile_work, python_calls,
                                top_operators)
from benchmarks.workloads import Shape, build_variants, trainable, variant_steps

#: the time targets (compiled / reference, median over rounds)
TIME_TARGET = 1.02
MEMORY_TARGET = 1.02


def layer_excess(variants, shape: Shape) -> dict[str, int]:
    """Operators the first rewritten encoder layer runs more often than the hand-fused one
    (forward and backward on a random input of the step's shape)."""
    x = torch.randn(shape.batch, shape.regions + shape.text, variants.compiled.config.d_model, requires_grad=True)
    work = []
    for model in (variants.compiled, variants.fused):
        stack = model.get_encoder()
        layer = stack.layers[0] if hasattr(stack, "layers") else stack.block[0]

        def run(layer=layer):
            out = layer(x, attention_mask=None)
            (out[0] if isinstance(out, tuple) else out).sum().backward()
        run()
        work.append(profile_work(run))
    return work[0].excess_over(work[1])


def run_step(backbone: str, shape: Shape, rounds: int, repeats: int = 1, explain: bool = True) -> dict:
    variants = build_variants(backbone, shape)
    steps = variant_steps(variants)
    for fn in steps.values():  # optimizer state exists before anything is measured
        fn()
    work = {name: profile_work(fn) for name, fn in steps.items()}
    timing = interleaved(steps, baseline="floor", rounds=rounds, repeats=repeats, warmup=0)
    result = {
        "backbone": backbone, "shape": shape.text_form(), "rounds": rounds,
        "trainable": {name: sum(p.numel() for p in trainable(getattr(variants, name)))
                      for name in ("compiled", "fused", "paper")},
        "seconds": {name: round(timing.median_seconds(name), 4) for name in steps},
        "time": {
            "compiled/fused": timing.ratio("compiled", "fused").as_dict(),
            "compiled/paper": timing.ratio("compiled", "paper").as_dict(),
            "compiled/floor": timing.ratio("compiled", "floor").as_dict(),
            "fused/floor": timing.ratio("fused", "floor").as_dict(),
            "paper/floor": timing.ratio("paper", "floor").as_dict(),
        },
        "peak_mib": {name: round(w.peak_bytes / 2 ** 20, 1) for name, w in work.items()},
        "memory": {f"compiled/{ref}": round(work["compiled"].peak_bytes / work[ref].peak_bytes, 4)
                   for ref in ("fused", "paper", "floor")},
        "aten_calls": {name: sum(w.ops.values()) for name, w in work.items()},
        "ops_compiled_over_fused": work["compiled"].excess_over(work["fused"]),
        "ops_fused_over_compiled": work["fused"].excess_over(work["compiled"]),
        "layer_ops_compiled_over_fused": layer_excess(variants, shape),
        # same operators, but on other shapes or memory layouts?  (0: none)
        "layout_differences": layout_differences(operator_layouts(steps["compiled"]), operator_layouts(steps["fused"])),
        "python_calls": {name: python_calls(steps[name]) for name in ("compiled", "fused")},
    }
    missed = [key for key in ("compiled/fused", "compiled/paper") if result["time"][key]["median"] > TIME_TARGET]
    if missed and explain:  # say where the time goes, for the variants involved
        result["profile"] = {name: top_operators(steps[name]) for name in ("compiled", "fused")}
    del variants, steps
    gc.collect()
    return result
