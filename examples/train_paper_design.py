"""Train a paper design with the Hugging Face Trainer, then check that its checkpoint restores.

    python examples/train_paper_design.py                          # offline: tiny-t5, shapes task
    python examples/train_paper_design.py --backbone /models/t5-base --data /data/vqa --steps 0

By default it runs anywhere in under a minute: the paper's VL-PET-large for VL-T5 on ``tiny-t5``
(a random 2+2-block T5) with the paper's VL-T5 recipe, on the procedural shapes task.  For the real
run, point ``--backbone`` at a local T5-base directory (weights and tokenizer) and ``--data`` at a
VQA directory in the VL-T5 layout (train.json, val.json, features.h5: docs/data.md), and let the
recipe's epochs decide the length (``--steps 0``).
"""

import argparse

import torch

import vlsurgery
from vlsurgery.training import train

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--spec", default="lib:paper/t5-base/vl-pet-large.vls", help="any design with a projector")
parser.add_argument("--backbone", default="tiny-t5", help="a preset (random weights) or a local model directory")
parser.add_argument("--data", default="shapes", help="'shapes' or a VQA directory")
parser.add_argument("--recipe", default="paper/vl-t5", help="a shipped recipe name or a YAML file")
parser.add_argument("--steps", type=int, default=60, help="optimizer steps; 0: the recipe's epochs")
parser.add_argument("--output", default="runs/paper-design")
args = parser.parse_args()

# The recipe is the paper's (lr 3e-4, batch 300, 20 epochs, 5 beams, prompt "vqa:"); keyword
# arguments override any of its keys.  A tiny random backbone learns little in a few steps: this
# run shows the mechanics, `vlsurgery demo` shows learning.
overrides = dict(max_steps=args.steps, per_device_train_batch_size=32, train_size=640, eval_size=100,
                 save_strategy="no") if args.steps else {}
run = train(args.spec, data=args.data, backbone=args.backbone, output_dir=args.output, recipe=args.recipe,
            **overrides)
print(run.summary())

# What was written is the PET checkpoint (plus, for a random preset base, that base): restore it
# into a fresh model and check that it computes what the trained model computes.
# restore() builds on the CPU, the Trainer left the trained model on its device (CUDA when there is one)
restored = vlsurgery.restore(args.output).to(next(run.model.parameters()).device)
trained = dict(run.model.named_parameters())
same = all(torch.equal(p, trained[n]) for n, p in restored.named_parameters() if p.requires_grad)
print(f"restored from {args.output}: trained tensors identical: {same}")
raise SystemExit(0 if same else 1)
