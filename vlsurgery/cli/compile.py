"""``vlsurgery compile SPEC``: apply a design to its backbone and show what the compiler did.

Builds the backbone (pretrained weights from a local model directory; random weights for a
preset, or for any backbone with ``--random-weights``, e.g. a directory that holds only a
config.json), compiles the spec onto it, checks that the compiled model's parameters equal the
prediction of ``vlsurgery count``, and prints one line per rewritten layer class.
``--show-code`` prints the generated ``forward`` of every rewritten layer class: exactly what the
spec did to the layer's dataflow.
"""

from __future__ import annotations

import sys


def add_parser(subparsers) -> None:
    from vlsurgery.cli.plan import add_backbone_options

    p = subparsers.add_parser("compile", help="compile a design onto its backbone and show the generated code",
                              description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    add_backbone_options(p)
    p.add_argument("--show-code", action="store_true", help="print the generated forward of each rewritten layer class")
    p.add_argument("--seed", type=int, default=0, help="seed for random backbone weights and the added modules")
    p.add_argument("--random-weights", action="store_true",
                   help="build the backbone from its config with random weights (seeded), even when it has a "
                        "checkpoint; needed for a model directory that holds only a config.json")
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from vlsurgery.cli.plan import resolve_for_cli
    from vlsurgery.compiler import format_generated_code, generated_code
    from vlsurgery.compiler.compile import compile
    from vlsurgery.profiles.backbone import load_model

    plan, predicted = resolve_for_cli(args)
    model, pretrained = load_model(plan.backbone, seed=args.seed, weights="random" if args.random_weights else "auto")
    compile(plan.spec, model, seed=args.seed)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    agree = (trainable, total) == (predicted.trainable, predicted.total)
    classes = generated_code(model)
    if args.json:
        print(json.dumps({"backbone": plan.backbone_name, "pretrained": pretrained, "trainable": trainable,
                          "total": total, "predicted_trainable": predicted.trainable,
                          "predicted_total": predicted.total, "counts_agree": agree,
                          "layers": [{"class": c.class_name, "paths": list(c.paths)} for c in classes],
                          **({"code": {c.class_name: c.source for c in classes}} if args.show_code else {})},
                         indent=2))
    else:
        why = "--random-weights" if args.random_weights else "preset"
        weights = "pretrained weights" if pretrained else f"random weights ({why}, seed {args.seed})"
        print(f"compiled {args.spec} onto {plan.backbone_name} ({weights})")
        for c in classes:
            print(f"  {c.class_name:<28} {len(c.paths):>3} module(s): {_paths(c.paths)}")
        print(f"trainable {trainable:,} of {total:,} parameters ({100 * trainable / total:.4f} %); "
              f"{'equal to' if agree else 'DIFFERENT FROM'} the prediction of `vlsurgery count`")
        if args.show_code:
            print()
            print(format_generated_code(model))
    if not agree:
        print(f"vlsurgery compile: error: predicted {predicted.trainable:,} trainable / {predicted.total:,} total",
              file=sys.stderr)
        return 1
    return 0


def _paths(paths) -> str:
    shown = ", ".join(paths[:3])
    return shown + (f", ... ({len(paths) - 3} more)" if len(paths) > 3 else "")
