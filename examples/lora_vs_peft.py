"""The same LoRA through vlsurgery and through PEFT: the same trainable tensors, the same outputs.

    pip install peft            # only this example needs it (or 'vlsurgery[examples]')
    python examples/lora_vs_peft.py

vlsurgery writes LoRA as one line of a spec; PEFT as a ``LoraConfig``.  Both add
``(alpha / r) * B A x`` to the chosen projections.  This script applies both to copies of one
T5, copies vlsurgery's (randomised) A and B into PEFT's ``lora_A``/``lora_B``, and checks that the
two models compute the same logits, then that ``vlsurgery.merge`` folds the update away exactly
as PEFT's ``merge_and_unload`` does.
"""

import argparse
import copy
import sys

import torch

import vlsurgery
from vlsurgery.profiles.backbone import load_model

try:
    from peft import LoraConfig, get_peft_model
except ImportError:
    print("this example needs PEFT: pip install peft")
    sys.exit(0)

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--backbone", default="tiny-t5", help="a T5 preset (random weights) or a local T5 directory")
args = parser.parse_args()

SPEC = f"""
backbone {args.backbone}
*.{{self_attn,cross_attn}}.{{q,v}}: lora r=8 alpha=16   # every attention's query and value projections
"""
base, _ = load_model(args.backbone, seed=0)
base.eval()
ours = vlsurgery.compile(vlsurgery.parse(SPEC), copy.deepcopy(base), seed=0)
theirs = get_peft_model(copy.deepcopy(base), LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                         target_modules=["q", "v"]))

# B starts at zero in both (the update starts at 0): give it values, so that the comparison means
# something, then copy each site's A and B to PEFT.  The plan says where each site sits: the layer
# module and the Linear inside it, which is exactly the module PEFT wraps.
torch.manual_seed(0)
copied = 0
for site in vlsurgery.plan(vlsurgery.parse(SPEC), base.config).sites:
    lora = ours.get_submodule(f"{site.layer_module}.pet.{site.sublayer}_{site.projection}.delta")
    with torch.no_grad():
        lora.B.normal_(std=0.1)
        target = theirs.base_model.model.get_submodule(f"{site.layer_module}.{site.linear}")
        target.lora_A["default"].weight.copy_(lora.A)
        target.lora_B["default"].weight.copy_(lora.B)
    copied += 1

count = lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)  # noqa: E731
print(f"{copied} LoRA sites; trainable parameters: vlsurgery {count(ours):,}, PEFT {count(theirs):,}")

batch = dict(input_ids=torch.randint(2, base.config.vocab_size, (2, 7)),
             decoder_input_ids=torch.randint(2, base.config.vocab_size, (2, 5)))
with torch.no_grad():
    a, b, plain = ours(**batch).logits, theirs(**batch).logits, base(**batch).logits
    print(f"largest logit difference vlsurgery vs PEFT: {(a - b).abs().max():.2e} "
          f"(the update itself moves them by {(a - plain).abs().max():.2e})")
    merged_ours = vlsurgery.merge(ours)(**batch).logits
    merged_theirs = theirs.merge_and_unload()(**batch).logits
    print(f"after merging: vlsurgery vs PEFT {(merged_ours - merged_theirs).abs().max():.2e}")
ok = count(ours) == count(theirs) and torch.allclose(a, b, atol=1e-5) and torch.allclose(merged_ours, merged_theirs,
                                                                                        atol=1e-5)
print("same trainable tensors, same outputs:", ok)
sys.exit(0 if ok else 1)
