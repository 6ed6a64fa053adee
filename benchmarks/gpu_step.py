"""Item 1 on a GPU: the VL-PET-large train step in bf16 at the paper's batch sizes, eager and compiled.

``python -m benchmarks.gpu_step [--backbones bart-base t5-base] [--rounds 5] [--json PATH]``

VL-BART trains with batch 500 and VL-T5 with batch 300 (36 region tokens + 20 text tokens, 5
targets); a batch that does not fit is halved until it does (the batch used is reported).  The same
four variants as on CPU (compiled, hand-fused, paper-style, frozen floor), equal weights, moved to
CUDA in bfloat16; each is timed eager and under ``torch.compile`` (inductor), interleaved, with a
``torch.cuda.synchronize()`` closing every step.  Peak memory is ``torch.cuda.max_memory_allocated``
of one step.  Without CUDA the script says so and exits 0.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from dataclasses import replace

import torch

PAPER_BATCH = {"bart-base": 500, "t5-base": 300}


def _to(batch: dict, device, dtype) -> dict:
    return {k: (v.to(device, dtype) if v.is_floating_point() else v.to(device)) for k, v in batch.items()}


def _synced(fn):
    def run():
        fn()
        torch.cuda.synchronize()
    return run


def _peak(fn) -> int:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    return torch.cuda.max_memory_allocated() - base


def measure(backbone: str, batch: int, rounds: int, use_compile: bool) -> dict:
    from benchmarks.measure import interleaved
    from benchmarks.references import floor_inputs, reference_inputs
    from benchmarks.workloads import PAPER, build_variants, step_fn, vl_batch

    shape = replace(PAPER, batch=batch)
    v = build_variants(backbone, replace(shape, batch=2))  # the models; the batch is built below
    device, dtype = torch.device("cuda"), torch.bfloat16
    models = {name: getattr(v, name).to(device, dtype) for name in ("compiled", "fused", "paper", "floor")}
    data = _to(vl_batch(models["compiled"], shape), device, dtype)
    floor_kw = floor_inputs(models["floor"], data)

    def floor_fresh():
        floor_kw["inputs_embeds"].grad = None
        return floor_kw

    call = {name: (torch.compile(m) if use_compile else m) for name, m in models.items()}
    steps = {
        "compiled": step_fn(call["compiled"], lambda: data),
        "fused": step_fn(call["fused"], lambda: reference_inputs(models["fused"], data)),
        "paper": step_fn(call["paper"], lambda: reference_inputs(models["paper"], data)),
        "floor": step_fn(call["floor"], floor_fresh, optimizer=False),
    }
    steps = {name: _synced(fn) for name, fn in steps.items()}
    for fn in steps.values():
        fn()
    peaks = {name: _peak(fn) for name, fn in steps.items()}
    timing = interleaved(steps, baseline="fused", rounds=rounds, warmup=1)
    return {"backbone": backbone, "batch": batch, "torch.compile": use_compile,
            "seconds": {n: round(timing.median_seconds(n), 4) for n in steps},
            "time": {f"compiled/{ref}": timing.ratio("compiled", ref).as_dict() for ref in ("fused", "paper", "floor")},
            "peak_gib": {n: round(b / 2 ** 30, 2) for n, b in peaks.items()},
            "memory": {f"compiled/{ref}": round(peaks["compiled"] / peaks[ref], 4) for ref in ("fused", "paper")}}


def fit_and_measure(backbone: str, rounds: int, use_compile: bool) -> dict:
    batch = PAPER_BATCH[backbone]
    while batch >= 1:
        try:
            return measure(backbone, batch, rounds, use_compile)
        except torch.OutOfMemoryError:
            batch //= 2
            torch._dynamo.reset()
            gc.collect()
            torch.cuda.empty_cache()
    return {"backbone": backbone, "failed": "out of memory even at batch 1"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_step", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", nargs="+", default=list(PAPER_BATCH), choices=list(PAPER_BATCH))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", help="write the results here as JSON")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: the GPU step benchmark is skipped (GPU figures are not yet measured)")
        return 0
    results = []
    for backbone in args.backbones:
        for use_compile in (False, True):
            results.append(fit_and_measure(backbone, args.rounds, use_compile))
            print(json.dumps(results[-1]), flush=True)
    results.append({"device": torch.cuda.get_device_name(), "torch": torch.__version__})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
