"""``vlsurgery demo``: a VL-PET design counted, compiled, trained, compared, saved and restored, offline.

The demo design (``lib:examples/demo-t5.vls``) is VL-PET-large in miniature: a visual projector,
gated adapters of "large" granularity on the encoder's attention and feed-forward blocks, and
``lite`` adapters on the decoder's cross-attention values, on ``tiny-t5`` (a random 2+2-block T5,
built here: nothing is downloaded).  The demo

1. counts the trainable parameters from the spec alone (no model built);
2. trains it with the Hugging Face Trainer (``vlsurgery.training.train``, recipe ``demo``) on the
   procedural shapes task (:mod:`vlsurgery.data.shapes`): questions about coloured shapes in a
   3 x 3 grid whose nine cells are the image regions; the compiled count is checked against step 1;
3. trains the same backbone with the projector alone (as many steps), the baseline the paper
   compares against: the backbone is random and frozen, so anything learned beyond it is the PET
   modules' doing;
4. reports validation accuracy per question type against chance (each type's most frequent
   training answer) and the baseline;
5. saves the PET checkpoint, restores it into a freshly built model and checks that the restored
   model gives the same answers (and the same logits).

It is what ``vlsurgery train SPEC --recipe demo`` does, plus the comparison and the round trip.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

DEFAULT_SPEC = "lib:examples/demo-t5.vls"
RECIPE = "demo"
SHOWN = 4  # validation questions printed with their answers


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("demo", help="count, compile, train, save and restore the built-in demo design "
                              "(offline, about a minute on a CPU)",
                              description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("--spec", default=None, help="a design with a `projector`: a file or a library name such as "
                   f"lib:examples/demo.vls (default: {DEFAULT_SPEC})")
    p.add_argument("--backbone", default=None, help="override the spec's backbone (a tiny preset is advised)")
    p.add_argument("--steps", type=int, default=None, help="training steps of the design (default: the demo "
                   "recipe's, 1500)")
    p.add_argument("--baseline-steps", type=int, default=None, dest="baseline_steps",
                   help="training steps of the projector-alone baseline (default: as many as the design's)")
    p.add_argument("--output", default=None, help="keep the run here (PET checkpoint, tokenizer, Trainer files); "
                   "default: a temporary directory, removed at the end")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def baseline_spec(design: Path):
    """The design's backbone and projector, with the projector alone trained (no PET modules)."""
    import vlsurgery

    lines = [line for line in vlsurgery.dumps(vlsurgery.load(str(design))).splitlines()
             if line.startswith(("backbone ", "projector "))]
    return vlsurgery.parse("\n".join([*lines, "train projector"]) + "\n")


def _trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _heading(step: str, text: str) -> None:
    print(f"\n== {step}: {text}")
    sys.stdout.flush()


def _train(spec, backbone, output: Path, steps: int, seed: int):
    """One Trainer run of the demo recipe; only the final PET checkpoint is written (no checkpoint-N)."""
    from vlsurgery.training import train

    return train(spec, backbone=backbone, output_dir=output, recipe=RECIPE, max_steps=steps, seed=seed,
                 save_strategy="no", logging_steps=max(1, steps // 5), evaluate=False)


def run(args) -> int:
    import torch

    from vlsurgery.cli.report import render_count
    from vlsurgery.planning import count
    from vlsurgery.spec.loader import spec_path
    from vlsurgery.training import load_recipe

    torch.set_num_threads(1)  # tiny matrices: more threads only add overhead
    started = time.perf_counter()
    name = args.spec or DEFAULT_SPEC
    design = spec_path(name)[0]
    steps = args.steps if args.steps is not None else int(load_recipe(RECIPE)["max_steps"])
    baseline_steps = args.baseline_steps if args.baseline_steps is not None else steps
    if min(steps, baseline_steps) < 1:
        print("vlsurgery demo: error: --steps and --baseline-steps must be at least 1", file=sys.stderr)
        return 2

    _heading("1/5 count", "the design, from the spec alone (no model is built for this)")
    predicted = count(str(design), args.backbone)
    print(render_count(predicted, name + (" (shipped with vlsurgery)" if args.spec is None else "")), end="")
    if predicted.plan.projector is None:
        print("vlsurgery demo: the design needs a `projector`: the demo task is visual", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="vlsurgery-demo-") as scratch:
        output = Path(args.output) if args.output else Path(scratch)
        status = _demo(args, design, name, predicted, output, steps, baseline_steps)
    print(f"\ndone in {time.perf_counter() - started:.0f} s." + ("" if args.output else
          " (The run was in a temporary directory: --output DIR keeps it.)"))
    print("Next: `vlsurgery train SPEC --recipe demo` trains any design this way (docs/training.md); examples/ "
          "has scripts to copy from.")
    return status


def _demo(args, design, name, predicted, output: Path, steps: int, baseline_steps: int) -> int:
    import vlsurgery
    from vlsurgery.checkpoint import read_checkpoint
    from vlsurgery.data import accuracy_by_type
    from vlsurgery.planning import count
    from vlsurgery.training import answers

    backbone = predicted.plan.backbone_name
    recipe = _recipe_line(steps)
    _heading("2/5 compile and train", f"on a random, frozen {backbone} with the Hugging Face Trainer ({recipe})")
    begin = time.perf_counter()
    run = _train(str(design), args.backbone, output, steps, args.seed)
    seconds = time.perf_counter() - begin
    model, data, tokenizer = run.model, run.data, run.trainer.processing_class
    # the backbone's vocabulary was fitted to the task's words, so count again on the built config
    expected = count(str(design), model.config).trainable
    if _trainable(model) != expected:  # never expected: the count is exact
        print(f"vlsurgery demo: error: compiled {_trainable(model):,} trainable parameters, but `count` "
              f"predicted {expected:,}", file=sys.stderr)
        return 1
    total = sum(p.numel() for p in model.parameters())
    task = data.task
    print(f"compiled: {_trainable(model):,} trainable parameters, as counted ({_trainable(model) / total:.1%} of "
          f"{total:,}; the backbone's vocabulary is the task's {len(tokenizer)} words)")
    print(f"trained {_steps(steps)} in {seconds:.0f} s on {_task_line(task)}")

    _heading("3/5 baseline", f"the same backbone with the projector alone trained ({_steps(baseline_steps)})")
    begin = time.perf_counter()
    base = _train(baseline_spec(design), args.backbone, output / "projector-alone", baseline_steps,
                  args.seed)
    print(f"trained {_trainable(base.model):,} parameters (the projector) for {_steps(baseline_steps)} in "
          f"{time.perf_counter() - begin:.0f} s")

    _heading("4/5 results", f"on the {len(data.eval)} validation questions (exact match)")
    ask = dict(prompt=data.prompt, max_new_tokens=int(_max_answer_length()) + 1)
    said = answers(model, tokenizer, data.eval, **ask)
    said_base = answers(base.model, base.trainer.processing_class, data.eval, **ask)
    ours, theirs, chance = accuracy_by_type(said, data.eval), accuracy_by_type(said_base, data.eval), \
        task.chance("validation")
    print(_results_table(Path(name).name, ours, theirs, chance))
    margin = ours["all"] - chance["all"]
    print(f"\nThe design answers {ours['all']:.0%} of the questions right: {_points(margin)} over chance, "
          f"{_points(ours['all'] - theirs['all'])} over the projector alone.")
    if theirs["all"] < chance["all"]:
        print("The projector alone cannot steer a random, frozen backbone (it does not even learn to say an answer "
              "word):\nwhat was learned, the PET modules inside the layers learned.")
    print("A few validation questions:")
    for ex, a, b in list(zip(data.eval, said, said_base))[:SHOWN]:
        print(f"  {ex.question:<38} truth {ex.answer!r:<10} design {a!r:<10} projector alone {b!r}")

    _heading("5/5 save and restore", "the PET checkpoint, into a freshly built model")
    pet = output / "vlsurgery.safetensors"
    print(f"PET checkpoint: {pet} ({_kib(pet)}: the {len(read_checkpoint(output).tensors)} trained "
          f"tensors) and {output / 'vlsurgery.json'} (the spec, its hash, the backbone's identity)")
    print(f"  (the random base is saved beside it, {_kib(output / 'model.safetensors')}, only because it exists "
          "nowhere else; with a hub backbone the checkpoint is all that is written)")
    # restore() builds on the CPU; the Trainer left the trained model on its device (CUDA when there is
    # one): compare the two on the same device, where bit-identical logits are expected
    restored = vlsurgery.restore(output).to(_device(model))
    again = answers(restored, tokenizer, data.eval, **ask)
    same = sum(a == b for a, b in zip(said, again))
    identical = _same_logits(model, restored, run.trainer.data_collator, data)
    print(f"restored: {same} of {len(said)} answers the same as the trained model's; logits "
          f"{'identical' if identical else 'DIFFERENT'}")
    if same != len(said) or not identical:
        print("vlsurgery demo: error: the restored model differs from the trained one", file=sys.stderr)
        return 1
    return 0


def _max_answer_length() -> int:
    from vlsurgery.training.recipes import OWN_KEYS, load_recipe

    return load_recipe(RECIPE).get("max_answer_length", OWN_KEYS["max_answer_length"][1])


def _recipe_line(steps: int) -> str:
    from vlsurgery.training import load_recipe

    r = load_recipe(RECIPE)
    return f"recipe `{RECIPE}`: {steps} steps of batch {r['per_device_train_batch_size']}, lr {r['learning_rate']:g}"


def _task_line(task) -> str:
    ex = task.splits["train"][0]
    sizes = ", ".join(f"{len(v)} {k}" for k, v in task.splits.items() if v)
    return (f"the shapes task ({sizes} questions): each scene is {ex.feats.shape[0]} grid regions of "
            f"{task.feat_dim} features, e.g. {ex.question!r} -> {ex.answer!r}")


def _results_table(design: str, ours: dict, theirs: dict, chance: dict) -> str:
    rows = [("question type", "chance", "projector alone", design)]
    for kind in [*(k for k in ours if k != "all"), "all"]:
        rows.append((kind, f"{chance.get(kind, 0):.0%}", f"{theirs.get(kind, 0):.0%}", f"{ours[kind]:.0%}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  " + r[0].ljust(widths[0]) + "".join("   " + c.rjust(w) for c, w in zip(r[1:], widths[1:]))
                     for r in rows)


def _steps(n: int) -> str:
    return f"{n} step" + ("" if n == 1 else "s")


def _points(difference: float) -> str:
    return f"{100 * difference:+.0f} points"


def _kib(path: Path) -> str:
    return f"{path.stat().st_size / 1024:,.0f} KiB" if path.is_file() else "absent"


def _device(model):
    return next(model.parameters()).device


def _same_logits(a, b, collator, data) -> bool:
    """Whether the two models give bit-identical logits on a batch of validation questions.

    The batch comes from the run's own collator (seq2seq or decoder-only: their inputs differ), on the
    models' device.  Its labels stay: a seq2seq model derives its decoder inputs from them."""
    import torch

    batch = {k: v.to(_device(a)) for k, v in collator(list(data.eval[:64])).items()}
    a.eval(), b.eval()
    with torch.no_grad():
        return torch.equal(a(**batch).logits, b(**batch).logits)
