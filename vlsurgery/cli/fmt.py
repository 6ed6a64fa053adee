"""``vlsurgery fmt SPEC``: print a spec in canonical form, or convert it (``--to yaml|dsl``).

The spec is formatted as written (``extends`` is not merged).  Comments of a DSL file are kept
when the output is DSL, each before the declaration it preceded; converting drops them (a note
says so).  ``--check`` exits 1 when the file is not canonical (like ``black --check``);
``-i`` rewrites the file.  A spec with syntax errors is not formatted; other problems (an
unknown method, say) do not stop the formatter: ``check`` reports them.
"""

from __future__ import annotations

import sys

from vlsurgery.errors import SpecSyntaxError, UsageError
from vlsurgery.resources import LIB
from vlsurgery.spec.loader import guess_format, read, read_file, spec_path
from vlsurgery.spec.printer import dumps_dsl, dumps_yaml


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("fmt", help="print a spec in canonical form, or convert DSL <-> YAML",
                              description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("spec", metavar="SPEC", help="a .vls or .yaml spec file, or lib:NAME from the shipped library")
    p.add_argument("--to", choices=("dsl", "yaml"), help="output form (default: the input's)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if the file is not in canonical form")
    mode.add_argument("-i", "--in-place", action="store_true", help="rewrite the file in canonical form")
    p.set_defaults(func=run)


def format_text(data, source: str, to: str | None) -> tuple[str, str, int]:
    """``(canonical text, input form, comments dropped)``; raises SpecSyntaxError on syntax errors."""
    meta: dict = {}
    spec, problems, failed, text = read(data, source, None, meta)
    if failed:
        raise SpecSyntaxError([p for p in problems if p.severity == "error"], {source: text})
    form = guess_format(text, source)
    to = to or form
    comments = meta.get("comments", [])
    if to == "dsl":
        return dumps_dsl(spec, comments if form == "dsl" else None, meta), form, 0 if form == "dsl" else 0
    return dumps_yaml(spec), form, len(comments)


def run(args) -> int:
    path, _ = spec_path(args.spec)
    if args.in_place and args.spec.startswith(LIB):
        raise UsageError(f"-i cannot rewrite {args.spec}: the shipped library is read-only; "
                         f"write `vlsurgery fmt {args.spec}` to a file of your own instead")
    data = read_file(path, args.spec)
    out, form, dropped = format_text(data, args.spec, args.to)
    if (args.check or args.in_place) and args.to and args.to != form:
        raise UsageError(f"--{'check' if args.check else 'in-place'} cannot be combined with converting "
                         f"{form} to {args.to}; write the converted spec to a new file instead")
    if dropped:
        print(f"note: {dropped} comment{'s' if dropped != 1 else ''} not carried over to YAML", file=sys.stderr)
    if args.check:
        current = data.decode("utf-8-sig")
        if current != out:
            print(f"would reformat {args.spec}", file=sys.stderr)
            return 1
        return 0
    if args.in_place:
        if data.decode("utf-8-sig") != out:
            path.write_text(out, encoding="utf-8")
            print(f"reformatted {args.spec}", file=sys.stderr)
        return 0
    sys.stdout.write(out)
    return 0
