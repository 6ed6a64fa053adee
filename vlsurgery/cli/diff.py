"""``vlsurgery diff A B``: what changed between two designs, and what it costs.

The comparison is semantic, on the resolved plans: sites added (+), removed (-) and changed (~,
field by field: ``gate: vector -> matrix(r=96)``), one row per change however many layers it
covers, each with its trainable-parameter difference; then differences of backbone, projector,
``train`` (as the base parameters they make trainable) and shared tensors; then the totals.
Designs that differ only in formatting, order, comments, ``let`` values that resolve the same,
or DSL vs YAML are identical.  ``--backbone`` resolves both on one backbone; without it each is
resolved on its own (a spec naming none borrows the other's).  ``--json`` prints the stable JSON
object documented in :mod:`vlsurgery.diff` and docs/diff.md; ``--markdown`` a table.

Exit status, as diff(1): 0 identical, 1 different, 2 trouble (an unreadable or invalid spec, a
spec that does not fit the backbone, an unknown backbone, a bad command line).  Because 1 means
"different" here, spec errors exit 2, not 1 as in the other commands.  Warnings go to stderr.
"""

from __future__ import annotations

import sys

from vlsurgery.cli.plan import add_roots_option

EXIT_SAME, EXIT_DIFFERENT, EXIT_TROUBLE = 0, 1, 2


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("diff", help="compare two designs: what changed and what it costs",
                              description=__doc__.split("\n\n")[0].split(": ", 1)[1],
                              epilog="Exit status: 0 identical, 1 different, 2 trouble.")
    p.add_argument("a", metavar="A", help="the first spec (.vls or .yaml)")
    p.add_argument("b", metavar="B", help="the second spec")
    add_roots_option(p)
    p.add_argument("-b", "--backbone", metavar="NAME|PATH",
                   help="resolve both specs on this backbone instead of their own")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print a JSON object (schema: docs/diff.md)")
    out.add_argument("--markdown", action="store_true", help="print a Markdown table")
    out.add_argument("-q", "--quiet", action="store_true", help="print nothing; only the exit status")
    p.set_defaults(func=run)


def _load(path, roots=()):
    from vlsurgery.spec.loader import load_with_problems

    spec, warnings, texts, _ = load_with_problems(path, roots)
    for w in warnings:
        print(w.render(texts.get(w.span.source) if w.span else None), file=sys.stderr)
    return spec, {(w.span.source, w.span.line) for w in warnings if w.span}


def run(args) -> int:
    from vlsurgery.diff.compute import diff
    from vlsurgery.errors import SpecError, VLSurgeryError

    try:
        spec_a, seen_a = _load(args.a, args.roots)
        spec_b, seen_b = _load(args.b, args.roots)
        d = diff(spec_a, spec_b, args.backbone)
    except SpecError as e:  # 1 would mean "different": trouble is 2 here
        print(e.render(), file=sys.stderr)
        return EXIT_TROUBLE
    except VLSurgeryError as e:
        print(f"vlsurgery diff: error: {e}", file=sys.stderr)
        return EXIT_TROUBLE
    seen = seen_a | seen_b
    for count in (d.a_count, d.b_count):  # resolution warnings not already printed by the loader
        for w in count.plan.warnings:
            if not (w.span and (w.span.source, w.span.line) in seen):
                print(w.render(), file=sys.stderr)
    d = _titled(d, args)
    if args.json:
        print(d.to_json())
    elif args.markdown:
        sys.stdout.write(d.markdown())
    elif not args.quiet:
        sys.stdout.write(d.render())
    return EXIT_SAME if d.identical else EXIT_DIFFERENT


def _titled(d, args):
    """The paths as the user typed them (a loaded Spec only knows its last file)."""
    from dataclasses import replace

    return replace(d, a_title=args.a, b_title=args.b)
