"""Keep what was trained, bring it back, and fold it into the backbone.

    python examples/restore_and_merge.py [--steps 30]

1. train a LoRA design briefly (the Trainer, the shapes task) and save its PET checkpoint:
   only the trained tensors, the spec and the backbone's identity (``vlsurgery.save``);
2. restore it into a freshly built backbone (``vlsurgery.restore``): the same logits, exactly;
3. merge (``vlsurgery.merge``): every LoRA update is folded into the weight it modifies, with the
   same logits up to float rounding.  Sites that cannot be folded (the visual projector; VL-PET's
   ``lite`` adapter, whose GELU makes it non-linear) are refused by name with the reason, and the
   model is left as it was; ``partial=True`` folds the others and keeps them.  A design whose sites
   all fold becomes a plain Hugging Face model that no longer needs vlsurgery.

The same from the command line: ``vlsurgery merge DIR`` (``--partial``; ``vlsurgery merge --help``).
"""

import argparse
import tempfile

import torch

import vlsurgery
from vlsurgery.data.collate import VLCollator
from vlsurgery.training import train

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--steps", type=int, default=30)
args = parser.parse_args()

LORA = vlsurgery.parse("""
backbone tiny-t5
projector feat_dim=16
train projector
*.{self_attn,cross_attn}.{q,v}: lora r=8 alpha=16
""")

with tempfile.TemporaryDirectory() as out:
    # 1. train and save (train() writes the PET checkpoint to its output directory; for a random
    #    preset base it also writes that base, which exists nowhere else)
    run = train(LORA, output_dir=out, recipe="demo", max_steps=args.steps, save_strategy="no", evaluate=False,
                disable_tqdm=True, train_size=500, eval_size=50)
    model = run.model.eval()
    device = next(model.parameters()).device  # the Trainer's device: CUDA when there is one
    batch = VLCollator(run.trainer.processing_class, prompt=run.data.prompt)(run.data.eval[:16])
    batch = {k: v.to(device) for k, v in batch.items()}
    with torch.no_grad():
        trained = model(**batch).logits

    # 2. restore into a fresh model (restore() builds it on the CPU: move it beside the trained one)
    restored = vlsurgery.restore(out).to(device).eval()
    with torch.no_grad():
        same = torch.equal(restored(**batch).logits, trained)
    print("restored == trained, bit for bit:", same)
    if not same:
        raise SystemExit("the restored model computes something else")

    # 3. merge.  The LoRA updates are linear: they fold into the weights they modify.  The visual
    #    projector is not a weight update (it turns region features into input tokens): merge
    #    refuses, names it and says why, and leaves the model as it was; partial=True folds the
    #    rest and keeps it.  A text-only LoRA design merges completely, into a plain HF model.
    try:
        vlsurgery.merge(restored)
    except vlsurgery.MergeError as refusal:
        print("merge refused:", str(refusal).replace("\n", "\n  "))
    merged = vlsurgery.merge(restored, partial=True)
    with torch.no_grad():
        diff = (merged(**batch).logits - trained).abs().max().item()
    print(f"merged with partial=True: largest logit difference {diff:.1e}; LoRA modules left: "
          f"{sum(n.endswith('.delta') for n, _ in merged.named_modules())}")
    if diff > 1e-4:
        raise SystemExit("the merged model computes something else")
