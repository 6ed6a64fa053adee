"""Item 2: LoRA through vlsurgery against LoRA through PEFT, on the same backbone and weights.

Same rank, alpha and targets (the query and value projections of every attention: encoder
self-attention, decoder self- and cross-attention), dropout 0.  The vlsurgery model's LoRA weights
(B randomised, so that the update is not zero) are copied into PEFT's; the two must then have equal
trainable counts and equal logits.  Then their train steps are timed interleaved, and their peak
step memory and aten operator counts compared.  PEFT is a benchmark-only dependency: without it
this item reports itself as skipped.
"""

from __future__ import annotations

import copy
import re

import torch

import vlsurgery
from benchmarks.measure import interleaved, profile_work
from benchmarks.workloads import Shape, fresh, trainable

R, ALPHA = 8, 16

#: family -> (PEFT target module names, regex of a projection path -> (layer path, site name))
TARGETS = {
    "bart": (["q_proj", "v_proj"], [(r"^(.*\.layers\.\d+)\.self_attn\.([qv])_proj$", "self_attn_{}"),
                                    (r"^(.*\.layers\.\d+)\.encoder_attn\.([qv])_proj$", "cross_attn_{}")]),
    "t5": (["q", "v"], [(r"^(.*\.block\.\d+)\.layer\.0\.SelfAttention\.([qv])$", "self_attn_{}"),
                        (r"^(.*\.block\.\d+)\.layer\.1\.EncDecAttention\.([qv])$", "cross_attn_{}")]),
}


def lora_spec() -> str:
    return (f"encoder.self_attn.{{q,v}}: lora r={R} alpha={ALPHA}\n"
            f"decoder.{{self_attn,cross_attn}}.{{q,v}}: lora r={R} alpha={ALPHA}\n")


def _family(model) -> str:
    return "t5" if "t5" in model.config.model_type else "bart"


def build_pair(backbone: str, seed: int = 0):
    """(vlsurgery LoRA model, PEFT LoRA model) with equal weights, both in train mode."""
    from peft import LoraConfig, get_peft_model

    base = fresh(backbone, seed)
    plain = copy.deepcopy(base)
    ours = vlsurgery.compile(lora_spec(), base, seed=seed).train()
    g = torch.Generator().manual_seed(5)
    targets, patterns = TARGETS[_family(plain)]
    config = LoraConfig(r=R, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=targets, bias="none")
    theirs = get_peft_model(plain, config).train()
    copied = 0
    with torch.no_grad():
        for name, module in theirs.base_model.model.named_modules():
            for pattern, site in patterns:
                match = re.match(pattern, name)
                if match and hasattr(module, "lora_A"):
                    lora = ours.get_submodule(match.group(1)).pet[site.format(match.group(2))].delta
                    lora.B.copy_(torch.randn(lora.B.shape, generator=g) * 0.05)
                    module.lora_A["default"].weight.copy_(lora.A)
                    module.lora_B["default"].weight.copy_(lora.B)
                    copied += 1
    if copied == 0:
        raise RuntimeError("no LoRA module matched between vlsurgery and PEFT")
    return ours, theirs, copied


def text_batch(model, shape: Shape, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    vocab, length = model.config.vocab_size, shape.regions + shape.text
    ids = torch.randint(3, vocab, (shape.batch, length), generator=g)
    return dict(input_ids=ids, attention_mask=torch.ones_like(ids),
                labels=torch.randint(3, vocab, (shape.batch, shape.targets), generator=g))


def _step(model, batch):
    opt = torch.optim.AdamW(trainable(model), lr=1e-5)

    def run():
        loss = model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return run


def run_lora(backbone: str, shape: Shape, rounds: int) -> dict:
    try:
        import peft
    except ImportError:
        return {"backbone": backbone, "skipped": "peft is not installed (pip install peft)"}
    ours, theirs, sites = build_pair(backbone)
    batch = text_batch(ours, shape)
    ours.eval(), theirs.eval()
    with torch.no_grad():
        diff = (ours(**batch).logits - theirs(**batch).logits).abs().max().item()
    ours.train(), theirs.train()
    steps = {"vlsurgery": _step(ours, batch), "peft": _step(theirs, batch)}
    for fn in steps.values():
        fn()
    work = {name: profile_work(fn) for name, fn in steps.items()}
    timing = interleaved(steps, baseline="peft", rounds=rounds, warmup=0)
    return {
        "backbone": backbone, "peft": peft.__version__, "r": R, "alpha": ALPHA, "sites": sites,
        "shape": f"batch {shape.batch} x {shape.regions + shape.text} text tokens, {shape.targets} targets",
        "trainable": {"vlsurgery": sum(p.numel() for p in trainable(ours)),
                      "peft": sum(p.numel() for p in trainable(theirs))},
        "max_logit_diff": diff,
        "seconds": {name: round(timing.median_seconds(name), 4) for name in steps},
        "time": {"vlsurgery/peft": timing.ratio("vlsurgery").as_dict()},
        "peak_mib": {name: round(w.peak_bytes / 2 ** 20, 1) for name, w in work.items()},
        "memory": {"vlsurgery/peft": round(work["vlsurgery"].peak_bytes / work["peft"].peak_bytes, 4)},
        "aten_calls": {name: sum(w.ops.values()) for name, w in work.items()},
        "ops_vlsurgery_over_peft": work["vlsurgery"].excess_over(work["peft"]),
    }
