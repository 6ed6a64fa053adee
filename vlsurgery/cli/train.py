"""``vlsurgery train``: compile a spec and train it with the Hugging Face Trainer.

The data is the procedural shapes task (default), a VQA directory or a caption directory; the
settings come from a YAML recipe (``--recipe demo``, ``--recipe paper/vl-t5`` or a path), and the
flags below win over it.  At the end it prints the validation accuracy (VQA) or BLEU-4 and CIDEr
(captions) against chance, and where the PET checkpoint is.
"""

from __future__ import annotations

import sys


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a design with the Hugging Face Trainer (recipes: YAML)",
                              description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("spec", help="a design: a file or a library name such as lib:examples/demo-t5.vls")
    p.add_argument("--data", default="shapes", help="'shapes' (default) or a VQA or caption directory: train.json, "
                   "val.json, features.h5 (the JSON says which task)")
    p.add_argument("--backbone", default=None, help="override the spec's backbone")
    p.add_argument("--output", default="vlsurgery-run", help="output directory (default vlsurgery-run)")
    p.add_argument("--recipe", default=None, help="a shipped recipe name (demo, paper/vl-bart, paper/vl-t5) or a "
                   "YAML file")
    p.add_argument("--max-steps", type=int, default=None, dest="max_steps")
    p.add_argument("--epochs", type=float, default=None, dest="num_train_epochs")
    p.add_argument("--lr", type=float, default=None, dest="learning_rate")
    p.add_argument("--batch-size", type=int, default=None, dest="per_device_train_batch_size")
    p.add_argument("--grad-accum", type=int, default=None, dest="gradient_accumulation_steps")
    p.add_argument("--beams", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--bf16", action="store_true", default=None, help="mixed precision in bfloat16")
    p.add_argument("--resume", default=None, help="a checkpoint-N directory, or 'last' for the newest in --output")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any recipe key (a Seq2SeqTrainingArguments field), value read as YAML; repeatable")
    p.set_defaults(func=run)


FLAGS = ("max_steps", "num_train_epochs", "learning_rate", "per_device_train_batch_size",
         "gradient_accumulation_steps", "beams", "seed", "bf16")


def overrides(args) -> dict:
    """The recipe keys the command line sets (flags, then ``--set``)."""
    import yaml

    from vlsurgery.errors import UsageError

    out = {k: getattr(args, k) for k in FLAGS if getattr(args, k, None) is not None}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    return out


def run(args) -> int:
    from vlsurgery.training import train

    resume = True if args.resume == "last" else args.resume
    result = train(args.spec, data=args.data, backbone=args.backbone, output_dir=args.output, recipe=args.recipe,
                   resume_from_checkpoint=resume, **overrides(args))
    print(result.summary())
    sys.stdout.flush()
    return 0
