"""``vlsurgery plan SPEC``: every concrete site a spec resolves to on its backbone.

One line per site: its canonical path, the method with its finalised hyperparameters, the layer
module, the dataflow points X and H (or the linear), the widths and the parameters it adds; then
the backbone parameters ``train`` makes trainable, the projector and the totals.  ``--backbone``
replaces the spec's backbone (a preset, hub name or local model directory); ``--json`` prints one
JSON object instead (``trainable``, ``total``, ``trainable_percent``, ``sites``, ...).  Warnings go
to stderr.
"""

from __future__ import annotations

import json
import sys


def add_roots_option(p) -> None:
    p.add_argument("--extends-root", dest="roots", action="append", default=[], metavar="DIR",
                   help="a further folder whose specs `extends` may name (repeatable; docs/limits.md)")


def add_backbone_options(p) -> None:
    p.add_argument("spec", metavar="SPEC", help="a .vls or .yaml spec file, or lib:NAME from the shipped library")
    add_roots_option(p)
    p.add_argument("-b", "--backbone", metavar="NAME|PATH",
                   help="use this backbone instead of the spec's (preset, hub name or local model directory)")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of a table")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("plan", help="list every concrete site a spec resolves to",
                              description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    add_backbone_options(p)
    p.set_defaults(func=run)


def resolve_for_cli(args):
    """Load the spec, resolve it, print every warning (spec-level and backbone-level) to stderr."""
    from vlsurgery.planning import count_plan
    from vlsurgery.planning.resolve import resolve
    from vlsurgery.spec.loader import load_with_problems

    spec, warnings, texts, _ = load_with_problems(args.spec, args.roots)
    plan = resolve(spec, args.backbone)
    seen = {(w.span.source, w.span.line) for w in warnings if w.span}
    extra = [w for w in plan.warnings if not (w.span and (w.span.source, w.span.line) in seen)]
    for w in list(warnings) + extra:
        print(w.render(texts.get(w.span.source) if w.span else None), file=sys.stderr)
    return plan, count_plan(plan)


def run(args) -> int:
    from vlsurgery.cli.report import count_json, render_plan

    plan, count = resolve_for_cli(args)
    if args.json:
        print(json.dumps(count_json(count, full_sites=True, title=args.spec), indent=2))
    else:
        sys.stdout.write(render_plan(plan, count, args.spec))
    return 0
