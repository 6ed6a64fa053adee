"""Item 4: generate() throughput, compiled model with identity sites against the original.

Both models start from the same random weights.  The compiled one carries VL-PET-large with every
site module made an identity (scale set to 1 first where the spec has s != 1), so both must generate
exactly the same tokens, which is checked.  Text-only inputs (no visual regions), KV cache on,
a fixed number of new tokens; greedy and beam search are timed interleaved.  tokens/s counts the
generated tokens of every returned sequence (batch x new tokens).  ``extra_calls``: how many more aten
calls one generate() of the compiled model makes, at n and at 2n new tokens (equal: one-time work).
"""

from __future__ import annotations

import torch

import vlsurgery
from benchmarks.measure import interleaved, profile_work
from benchmarks.workloads import Shape, fresh, vl_pet_large


def identity_pair(backbone: str, seed: int = 0):
    original = fresh(backbone, seed).eval()
    compiled = vlsurgery.compile(str(vl_pet_large(backbone)), fresh(backbone, seed), seed=seed).eval()
    for module in compiled.modules():
        if hasattr(module, "make_identity_") and hasattr(module, "scale"):
            module.scale = 1.0
            module.make_identity_()
    return original, compiled


def run_generation(backbone: str, shape: Shape, new_tokens: int, beams: int, rounds: int) -> dict:
    original, compiled = identity_pair(backbone)
    g = torch.Generator().manual_seed(4)
    ids = torch.randint(3, original.config.vocab_size, (shape.batch, shape.regions + shape.text), generator=g)
    inputs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True,
                  max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
    result = {"backbone": backbone, "batch": shape.batch, "prompt": shape.regions + shape.text,
              "new_tokens": new_tokens, "beams": beams}
    for mode, extra in (("greedy", {}), ("beam", {"num_beams": beams})):
        def gen(model, extra=extra):
            return lambda: model.generate(**inputs, **extra)

        with torch.no_grad():
            same = torch.equal(gen(original)(), gen(compiled)())
            timing = interleaved({"compiled": gen(compiled), "original": gen(original)}, baseline="original",
                                 rounds=rounds, warmup=0)
            added = []  # aten calls the compiled model adds per generate(), at n and 2n new tokens
            for n in (new_tokens, 2 * new_tokens):
                more = dict(inputs, max_new_tokens=n, min_new_tokens=n, **extra)
                work = [profile_work(lambda m=m: m.generate(**more)) for m in (compiled, original)]
                added.append(sum(work[0].ops.values()) - sum(work[1].ops.values()))
        tokens = shape.batch * new_tokens
        speed = timing.ratio("original", "compiled")  # tokens/s ratio = original time / compiled time, per round
        result[mode] = {"same_tokens": same, "extra_calls": added, "speed_ratio": speed.as_dict(),
                        "tokens_per_s": {name: round(tokens / timing.median_seconds(name), 1)
                                         for name in ("compiled", "original")}}
    return result
