"""``vlsurgery draw SPEC [B] -o design.svg|.html``: a design as a picture, or two with their diff.

Every site is drawn where it attaches: sublayer sites on the residual stream between X and H,
projection sites on their projection, prefix tokens at the stack's input; norms made trainable by
``train`` are outlined; colours follow each site's trainable parameters (log scale, legend), with
the totals on top.  With a second spec the two designs are drawn side by side and the sites that
differ are outlined (added, removed, changed; ``vlsurgery diff``).  The file is self-contained
(SVG, or SVG in an HTML page: by the suffix of ``-o``); without ``-o`` the SVG goes to stdout.
"""

from __future__ import annotations

import sys
from pathlib import Path

from vlsurgery.cli.plan import add_roots_option


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("draw", help="draw a design (or two, with their diff) as SVG or HTML",
                              description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("spec", metavar="SPEC", help="a .vls or .yaml spec, or lib:NAME")
    p.add_argument("other", metavar="B", nargs="?", help="a second spec: draw both and highlight the diff")
    add_roots_option(p)
    p.add_argument("-b", "--backbone", metavar="NAME|PATH", help="draw on this backbone instead of the spec's")
    p.add_argument("-o", "--output", metavar="FILE.svg|FILE.html", help="where to write (default: SVG on stdout)")
    p.set_defaults(func=run)


def run(args) -> int:
    from vlsurgery.draw import draw, draw_html
    from vlsurgery.errors import UsageError
    from vlsurgery.spec.loader import load_with_problems

    out = Path(args.output) if args.output else None
    if out is not None and out.suffix.lower() not in (".svg", ".html", ".htm"):
        raise UsageError(f"-o {args.output}: the picture is written as .svg or .html (by the suffix)")
    specs = []
    for name in filter(None, [args.spec, args.other]):
        spec, warnings, texts, _ = load_with_problems(name, args.roots)
        for w in warnings:
            print(w.render(texts.get(w.span.source) if w.span else None), file=sys.stderr)
        specs.append(spec)
    # the titles are the names given on the command line
    from dataclasses import replace

    specs = [replace(s, source=n) for s, n in zip(specs, filter(None, [args.spec, args.other]))]
    other = specs[1] if len(specs) > 1 else None
    if out is None:
        sys.stdout.write(draw(specs[0], args.backbone, other))
        return 0
    text = (draw_html if out.suffix.lower() in (".html", ".htm") else draw)(specs[0], args.backbone, other)
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot write {out}: {e.strerror or e}") from None
    print(f"wrote {out}", file=sys.stderr)
    return 0
