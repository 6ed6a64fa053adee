"""Item 4: generate() throughput, compiled model with identity sites against the original and the hand-fused.

All three models start from the same random weights.  The compiled one carries VL-PET-large with every
site module made an identity (scale set to 1 first where the spec has s != 1), so it must generate
exactly the same tokens as the original, which is checked; the hand-fused reference
(:func:`benchmarks.references.build_reference`) holds the compiled model's (identity) weights.
Text-only inputs (no visual regions), KV cache on, a fixed number of new tokens; greedy and beam
search are timed interleaved.  tokens/s counts the generated tokens of every returned sequence
(batch x new tokens).

An identity site still computes (a gate saturated to 1 is still a sigmoid of a matrix product), so
the compiled model cannot match the original's speed: it does the arithmetic of the sites, as the
hand-fused reference does.  Measured exactly, per generate() call: ``extra_calls`` (aten calls the
compiled model adds over the original, at n and at 2n new tokens: equal means one-time work, none
per token), ``over_fused`` (aten calls by kind the compiled model runs more often than the
hand-fused one: none expected) and ``matmul_flops`` (the floating-point operations of every matrix
product, from the profiler), whose ratio original/compiled says how much arithmetic the sites add.
It is not a bound on the tokens/s ratio: at these sizes generate() is also paid for in per-token
overhead that the sites do not add to, so the measured ratio can lie above it.
"""

from __future__ import annotations

import torch
from torch.profiler import ProfilerActivity, profile

import vlsurgery
from benchmarks.measure import interleaved, profile_work
from benchmarks.references import build_reference
from benchmarks.workloads import Shape, fresh, vl_pet_large

MODELS = ("compiled", "fused", "original")


def identity_pair(backbone: str, seed: int = 0):
    original = fresh(backbone, seed).eval()
    compiled = vlsurgery.compile(str(vl_pet_large(backbone)), fresh(backbone, seed), seed=seed).eval()
    for module in compiled.modules():
        if hasattr(module, "make_identity_") and hasattr(module, "scale"):
            module.scale = 1.0
            module.make_identity_()
    return original, compiled


def identity_models(backbone: str, seed: int = 0) -> dict:
    """compiled (identity sites), fused (its hand-fused reference) and original, in eval mode."""
    original, compiled = identity_pair(backbone, seed)
    return {"compiled": compiled, "fused": build_reference(compiled, "fused").eval(), "original": original}


#: The matrix products: the profiler also gives FLOPs of elementwise operators, which are not counted.
#: (``aten::linear`` and ``aten::matmul`` carry no FLOPs of their own: they call these.)
MATMULS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def matmul_flops(fn) -> int:
    """Floating-point operations of every matrix product one call of ``fn`` runs (profiler count)."""
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        fn()
    return sum(event.flops or 0 for event in prof.events() if event.name in MATMULS)


def generate_inputs(model, shape: Shape, new_tokens: int) -> dict:
    g = torch.Generator().manual_seed(4)
    ids = torch.randint(3, model.config.vocab_size, (shape.batch, shape.regions + shape.text), generator=g)
    return dict(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True,
                max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)


def run_generation(backbone: str, shape: Shape, new_tokens: int, beams: int, rounds: int) -> dict:
    models = identity_models(backbone)
    inputs = generate_inputs(models["original"], shape, new_tokens)
    result = {"backbone": backbone, "batch": shape.batch, "prompt": shape.regions + shape.text,
              "new_tokens": new_tokens, "beams": beams}
    for mode, extra in (("greedy", {}), ("beam", {"num_beams": beams})):
        def gen(model, extra=extra):
            return lambda: model.generate(**inputs, **extra)

        with torch.no_grad():
            outputs = {name: gen(model)() for name, model in models.items()}
            same = all(torch.equal(outputs["original"], out) for out in outputs.values())
            timing = interleaved({name: gen(model) for name, model in models.items()}, baseline="original",
                                 rounds=rounds, warmup=0)
            added, over_fused = [], {}  # aten calls the compiled model adds per generate(), at n and 2n new tokens
            for n in (new_tokens, 2 * new_tokens):
                more = dict(inputs, max_new_tokens=n, min_new_tokens=n, **extra)
                work = {name: profile_work(lambda m=m: m.generate(**more)) for name, m in models.items()}
                added.append(sum(work["compiled"].ops.values()) - sum(work["original"].ops.values()))
                over_fused = over_fused or work["compiled"].excess_over(work["fused"])
            flops = {name: matmul_flops(gen(models[name])) for name in ("compiled", "original")}
        tokens = shape.batch * new_tokens
        result[mode] = {
            "same_tokens": same, "extra_calls": added, "over_fused": over_fused, "matmul_flops": flops,
            # tokens/s ratio = reference time / compiled time, per round
            "speed_ratio": timing.ratio("original", "compiled").as_dict(),
            "speed_ratio_fused": timing.ratio("fused", "compiled").as_dict(),
            "tokens_per_s": {name: round(tokens / timing.median_seconds(name), 1) for name in MODELS}}
    return result
