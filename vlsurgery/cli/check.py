"""``vlsurgery check SPEC...``: validate specs; print what each says, or every problem.

For a valid spec it prints ``<file>: ok`` and the summary of :func:`vlsurgery.spec.summarize`
(backbone, extends chain, lets, projector, train, then each statement with its effective
parameters and the earlier statements it may override); warnings go to stderr.  For an invalid
one it prints every problem, with file, line, column and the offending line, to stderr.

When the spec names its backbone, ``check`` also resolves it there, so that it accepts only what
``count`` and ``compile`` accept (a layer that backbone does not have, a method that does not fit
its widths): offline and at once for a preset or a local directory; a hub name is not looked up
(``check`` never touches the network), and a name that can be neither is an error.
"""

from __future__ import annotations

import sys

from vlsurgery.cli.plan import add_roots_option
from vlsurgery.errors import BackboneError, SpecError
from vlsurgery.spec import summarize
from vlsurgery.spec.loader import load_with_problems
from vlsurgery.spec.space import Space


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
            spec, warnings, texts, chain = load_with_problems(path, args.roots, space=True)
        except SpecError as e:
            print(e.render(), file=sys.stderr)
            status = 1
            continue
        space = Space.of(spec)  # a plain spec is a space of one member
        if not all(_fits_its_backbone(space.member(idx), path, space, idx) for idx in space.samples()):
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
            if space.axes:
                print(f"{path}: ok{count}, a design space: {len(space.axes)} choice{'s' * (len(space.axes) != 1)}, "
                      f"{len(space):,} members (every option checked)")
                print("\n".join(["choices"] + ["  " + line for line in space.describe()]))
                print("the first member:")
            else:
                print(f"{path}: ok{count}")
            print(summarize(space.member((0,) * len(space.axes)), chain))
    return status


def _fits_its_backbone(spec, path: str, space=None, idx=()) -> bool:
    """Resolve the spec on the backbone it names when that needs no network; print why not (for a
    member of a space, with the choices that made it)."""
    from vlsurgery.planning.resolve import resolve
    from vlsurgery.profiles.backbone import backbone_name_problem, known_offline

    name = spec.backbone
    if name is None:
        return True
    problem = backbone_name_problem(name)
    if problem is not None:
        print(f"{path}: error: {problem}", file=sys.stderr)
        return False
    if not known_offline(name):
        return True  # a hub name: checked when count or compile loads it
    try:
        resolve(spec, name)
    except (SpecError, BackboneError) as e:
        print(e.render() if isinstance(e, SpecError) else f"{path}: error: {e}", file=sys.stderr)
        if space is not None and space.axes:
            print("  = in the member with " + ", ".join(f"{k} = {v}" for k, v in space.choices(idx).items()),
                  file=sys.stderr)
        return False
    return True
