"""``vlsurgery check SPEC...``: validate specs; print what each says, or every problem.

For a valid spec it prints ``<file>: ok`` and the summary of :func:`vlsurgery.spec.summarize`
(backbone, extends chain, lets, projector, train, then each statement with its effective
parameters and the earlier statements it may override); warnings go to stderr.  For an invalid
one it prints every problem, with file, line, column and the offending line, to stderr.
"""

from __future__ import annotations

import sys

from vlsurgery.cli.plan import add_roots_option
from vlsurgery.errors import SpecError
from vlsurgery.spec import summarize
from vlsurgery.spec.loader import load_with_problems


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("check", help="validate specs and summarise what they say",
                              description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("specs", nargs="+", metavar="SPEC", help="a .vls or .yaml spec file, or lib:NAME")
    add_roots_option(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print only problems, no summary")
    p.add_argument("-W", "--warnings-as-errors", action="store_true", help="exit 1 when there are warnings")
    p.set_defaults(func=run)


def run(args) -> int:
    status = 0
    for i, path in enumerate(args.specs):
        try:
            spec, warnings, texts, chain = load_with_problems(path, args.roots)
        except SpecError as e:
            print(e.render(), file=sys.stderr)
            status = 1
            continue
        for w in warnings:
            print(w.render(texts.get(w.span.source) if w.span else None), file=sys.stderr)
        if warnings and args.warnings_as_errors:
            status = 1
        if not args.quiet:
            if i:
                print()
            count = f" ({len(warnings)} warning{'s' if len(warnings) != 1 else ''})" if warnings else ""
            print(f"{path}: ok{count}")
            print(summarize(spec, chain))
    return status
