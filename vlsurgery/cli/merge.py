"""``vlsurgery merge DIR_OR_SPEC``: fold the exactly-linear sites into the base weights.

With a checkpoint directory (written by ``vlsurgery.save`` or ``save_pretrained`` of a compiled
model) the trained model is restored, merged, and with ``--out`` written by ``save_pretrained``:
after a full merge a plain Hugging Face model that no longer needs vlsurgery.  With a spec, nothing
is built: it lists which sites would fold on the backbone and why the others cannot.  Sites that
cannot fold make the command fail (exit 1), listed with the reason, unless ``--partial`` keeps them.
"""

from __future__ import annotations

import sys
from pathlib import Path


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("merge", help="fold LoRA, (IA)^3 and constant gates into the base weights",
                              description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("source", metavar="DIR_OR_SPEC", help="a checkpoint directory, or a .vls/.yaml spec (report only)")
    p.add_argument("-b", "--backbone", metavar="NAME|PATH",
                   help="the backbone: for a spec, instead of its own; for a checkpoint, a model directory with "
                        "the base weights it was trained on")
    p.add_argument("--partial", action="store_true", help="fold what folds and keep the other sites")
    p.add_argument("-o", "--out", metavar="DIR", help="write the merged model there (save_pretrained)")
    p.set_defaults(func=run)


def run(args) -> int:
    from vlsurgery.checkpoint import has_checkpoint, merge, merge_report
    from vlsurgery.errors import UsageError

    source = Path(args.source)
    if not has_checkpoint(source):
        if source.is_dir():
            raise UsageError(f"'{source}' is a directory without vlsurgery.json: expected a checkpoint directory "
                             "(vlsurgery.save, or save_pretrained of a compiled model) or a spec file")
        if args.out:
            raise UsageError("--out needs a checkpoint directory: a spec alone has no trained weights to merge")
        report = merge_report(args.source, args.backbone)
        print(report)
        return _verdict(report, args.partial)
    from vlsurgery.checkpoint import restore

    model = restore(source, backbone=args.backbone)
    from vlsurgery.planning import plan

    report = merge_report(plan(_spec(model), model.config))
    print(report)
    if report.kept and not args.partial:
        return _verdict(report, False)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the kept sites were just printed
        merge(model, partial=args.partial)
    if args.out:
        model.save_pretrained(args.out)
        kind = "a plain Hugging Face model" if not report.kept else "a model that still needs vlsurgery.restore"
        print(f"wrote {args.out}: {kind}")
    else:
        print("(nothing written: give --out DIR to save the merged model)")
    return 0


def _spec(model) -> str:
    from vlsurgery.checkpoint import spec_of

    return spec_of(model)


def _verdict(report, partial: bool) -> int:
    if report.kept and not partial:
        print(f"vlsurgery merge: error: {len(report.kept)} site(s) cannot fold into the base weights; "
              "use --partial to keep them", file=sys.stderr)
        return 1
    return 0
