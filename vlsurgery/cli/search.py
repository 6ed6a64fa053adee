"""``vlsurgery search SPACE``: every design of a space that fits a parameter budget, counted exactly.

The space is a spec with choices (``r=(48|96|192)``, ``(lite r=96 | none)``, ``encoder[0:6 |
6:12]``: docs/language.md); a plain spec is a space of one.  Each member is counted as ``vlsurgery
count`` would (no torch, no weights), kept when its trainable parameters are within ``--budget``
(``3%`` of the total, or a count: ``2.5M``, ``120k``) and at least ``--min``, then listed with the
most trainable first: one row per design with its choices, trainable parameters and percentage.
``--pareto --prefer AXIS:desc`` keeps only designs that no other beats on both fewer trainable
parameters and the preference; ``--top N`` the first N; ``--out DIR`` writes each listed design as
a canonical ``.vls`` file.  ``--json`` / ``--markdown`` change the output (docs/search.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from vlsurgery.cli.plan import add_roots_option


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("search", help="list the designs of a space that fit a parameter budget",
                              description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("spec", metavar="SPACE", help="a .vls or .yaml spec with choices, or lib:NAME")
    add_roots_option(p)
    p.add_argument("-b", "--backbone", metavar="NAME|PATH", help="count on this backbone instead of the spec's")
    p.add_argument("--budget", metavar="3%|2.5M", help="at most this many trainable parameters (or % of the total)")
    p.add_argument("--min", metavar="1%|500k", dest="minimum", help="at least this many trainable parameters")
    p.add_argument("--top", metavar="N", type=int, help="list only the first N designs")
    p.add_argument("--pareto", action="store_true",
                   help="keep designs not dominated on (fewer trainable parameters, --prefer)")
    p.add_argument("--prefer", metavar="AXIS[:desc|asc]", action="append", default=[],
                   help="a preference for --pareto, e.g. r:desc (larger r is better); repeatable")
    p.add_argument("--out", metavar="DIR", help="write each listed design as DIR/NNN.vls")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print a JSON object")
    out.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.set_defaults(func=run)


def run(args) -> int:
    from vlsurgery.errors import UsageError
    from vlsurgery.search.render import outcome_json, render_markdown, render_text
    from vlsurgery.search.run import search_space
    from vlsurgery.spec.loader import load_with_problems
    from vlsurgery.spec.space import Space

    if args.pareto and not args.prefer:
        raise UsageError("--pareto needs at least one --prefer AXIS:desc|asc (e.g. --prefer r:desc): "
                         "on trainable parameters alone the front is just the smallest design")
    if args.prefer and not args.pareto:
        raise UsageError("--prefer only means something with --pareto")
    spec, warnings, texts, _ = load_with_problems(args.spec, args.roots, space=True)
    for w in warnings:
        print(w.render(texts.get(w.span.source) if w.span else None), file=sys.stderr)
    outcome = search_space(Space.of(spec), args.backbone, budget=args.budget, minimum=args.minimum,
                           top=args.top, pareto=args.prefer if args.pareto else ())
    if args.out:
        _write(outcome, Path(args.out))
    if args.json:
        print(json.dumps(outcome_json(outcome, args.spec), indent=2))
    elif args.markdown:
        sys.stdout.write(render_markdown(outcome, args.spec))
    else:
        sys.stdout.write(render_text(outcome, args.spec))
    return 0


def _write(outcome, folder: Path) -> None:
    from vlsurgery.errors import UsageError
    from vlsurgery.spec import dumps

    try:
        folder.mkdir(parents=True, exist_ok=True)
        width = max(3, len(str(len(outcome.results))))
        for n, r in enumerate(outcome.results, 1):
            (folder / f"{n:0{width}d}.vls").write_text(dumps(r.spec), encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot write the designs to {folder}: {e.strerror or e}") from None
