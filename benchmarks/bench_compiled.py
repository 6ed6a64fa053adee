"""What compiling costs: speed and memory of compiled models, as ratios against a baseline in the same run.

The machines are shared and noisy, so every number is a ratio of two measurements taken in the
same process (or in two fresh processes, for peak memory), with the two sides interleaved and the
median of several repeats kept.

1. ``traced/original``: eval forward of the model whose layers are traced and reinstalled by class
   change *without* any site, against the original: the cost of the generated code itself
   (should be 1.00).
2. ``VL-PET-large/original``: eval forward with every VL-PET-large site inserted: what the PET
   modules add.
3. ``train step VL-PET-large / full fine-tuning``: one AdamW step (forward, backward, update) of
   the compiled design against the same backbone with every parameter trainable.
4. ``peak memory``: peak RSS of a process doing that train step, compiled against full
   fine-tuning (each in its own fresh process).
5. ``compile time / model construction time``.

Run: ``python benchmarks/bench_compiled.py [--backbone bart-base] [--repeats 7]``.  Random
weights (presets); batch 4 x 64 tokens; 2 threads.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from vlsurgery.compiler import install_graph, trace_layer
from vlsurgery.compiler.compile import compile, leaf_policy
from vlsurgery.profiles import load_backbone
from vlsurgery.profiles.backbone import load_model
from vlsurgery.resources import spec_library


def spec_for(backbone: str) -> str:
    family = "t5-base" if "t5" in backbone else "bart-base"
    return str(spec_library() / "paper" / family / "vl-pet-large.vls")


def inputs(model, batch=4, length=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, model.config.vocab_size, (batch, length), generator=g)
    labels = torch.randint(3, model.config.vocab_size, (batch, 16), generator=g)
    return dict(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels)


def traced_only(model, backbone):
    """Every layer traced and reinstalled with its unmodified graph: the generated code alone."""
    profile = load_backbone(backbone).profile
    policy = leaf_policy(profile.leaves)
    for stack in profile.stacks:
        for i in range(stack.n_layers):
            layer = model.get_submodule(stack.layer_module(i))
            install_graph(layer, trace_layer(layer, policy).copy_graph())
    return model


def timed(fn, repeats):
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def ratio(a_fn, b_fn, repeats):
    """median(a) / median(b), a and b interleaved."""
    a, b = [], []
    for _ in range(repeats):
        a += timed(a_fn, 1)
        b += timed(b_fn, 1)
    return statistics.median(a) / statistics.median(b), statistics.median(a), statistics.median(b)


def forward_fn(model, batch):
    def run():
        with torch.no_grad():
            model(**batch)
    return run


def train_step_fn(model, batch):
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)

    def run():
        loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return run


def peak_rss_child(backbone: str, mode: str) -> int:
    """Peak RSS (KiB) of a fresh process doing 3 train steps in ``mode`` (compiled or full)."""
    here = str(Path(__file__).resolve().parent)
    script = f"import sys; sys.path.insert(0, {here!r}); from bench_compiled import child; child({backbone!r}, {mode!r})"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def child(backbone: str, mode: str) -> None:
    torch.set_num_threads(2)
    model, _ = load_model(backbone)
    if mode == "compiled":
        compile(spec_for(backbone), model)
    model.train()
    step = train_step_fn(model, inputs(model))
    for _ in range(3):
        step()
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child would report its parent's peak.
    status = Path("/proc/self/status").read_text()
    print(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="bart-base")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(2)
    results = {"backbone": args.backbone, "spec": spec_for(args.backbone)}

    start = time.perf_counter()
    original, _ = load_model(args.backbone)
    construct = time.perf_counter() - start
    original.eval()
    batch = inputs(original)

    traced, _ = load_model(args.backbone)
    traced_only(traced, args.backbone).eval()
    r, a, b = ratio(forward_fn(traced, batch), forward_fn(original, batch), args.repeats)
    results["forward traced/original"] = round(r, 3)

    pet, _ = load_model(args.backbone)
    start = time.perf_counter()
    compile(spec_for(args.backbone), pet)
    results["compile time / construction time"] = round((time.perf_counter() - start) / construct, 3)
    results["compile seconds"] = round(time.perf_counter() - start, 2)
    pet.eval()  # the values do not matter here, only the cost of the inserted modules
    r, _, _ = ratio(forward_fn(pet, batch), forward_fn(original, batch), args.repeats)
    results["forward VL-PET-large/original"] = round(r, 3)

    full, _ = load_model(args.backbone)
    full.train()
    compiled, _ = load_model(args.backbone)
    compile(spec_for(args.backbone), compiled)
    compiled.train()
    r, a, b = ratio(train_step_fn(compiled, batch), train_step_fn(full, batch), max(3, args.repeats // 2))
    results["train step VL-PET-large/full fine-tuning"] = round(r, 3)
    results["train step seconds (VL-PET-large, full)"] = [round(a, 3), round(b, 3)]

    rss_compiled = peak_rss_child(args.backbone, "compiled")
    rss_full = peak_rss_child(args.backbone, "full")
    results["peak RSS VL-PET-large/full fine-tuning"] = round(rss_compiled / rss_full, 3)
    results["peak RSS MiB (VL-PET-large, full)"] = [rss_compiled // 1024, rss_full // 1024]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
