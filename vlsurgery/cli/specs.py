"""``vlsurgery specs``: list the shipped spec library, every design with its one-line description.

Each name works anywhere, in a clone or not: ``vlsurgery count lib:paper/bart-base/vl-pet-large.vls``,
``vlsurgery.load("lib:examples/lora.vls")``, ``extends "lib:paper/bart-base/vl-pet.vls"``,
``vlsurgery demo --spec lib:examples/demo.vls`` (the suffix may be left out).  ``--path`` prints
where the library is installed; ``vlsurgery fmt lib:NAME`` prints a design's text.
"""

from __future__ import annotations

import sys

from vlsurgery.render import table
from vlsurgery.resources import LIB, library_specs, spec_library


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("specs", help="list the shipped designs (names usable as lib:NAME)",
                              description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("prefix", nargs="?", default="", metavar="PREFIX",
                   help="only names that start with this (e.g. paper/t5-base)")
    p.add_argument("--path", action="store_true", help="print the library's folder instead")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.path:
        print(spec_library())
        return 0
    prefix = args.prefix.removeprefix(LIB)
    rows = [(LIB + name, text) for name, text in library_specs() if name.startswith(prefix)]
    if not rows:
        print(f"vlsurgery specs: no shipped design starts with {args.prefix!r}", file=sys.stderr)
        return 1
    sys.stdout.write("\n".join(table(rows)) + "\n")
    return 0
