"""``vlsurgery count SPEC``: how many parameters a design adds and trains, without building it.

Site groups (the same change on many layers is one row: ``encoder[0:6].self_attn  adapter r=96
heads=4 gate=matrix(r=96)  12 x 296,640``), shared tensors, the projector and the backbone
parameters made trainable, then trainable and total parameters of the compiled model and the
trainable percentage (docs/paper.md §6).  ``--backbone`` replaces the spec's backbone;
``--json`` prints one JSON object (``trainable``, ``total``, ``trainable_percent``, ``sites``...).
"""

from __future__ import annotations

import json
import sys

from vlsurgery.cli.plan import add_backbone_options, resolve_for_cli


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("count", help="count the parameters a design adds and trains",
                              description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    add_backbone_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from vlsurgery.cli.report import count_json, render_count

    _, count = resolve_for_cli(args)
    if args.json:
        print(json.dumps(count_json(count, title=args.spec), indent=2))
    else:
        sys.stdout.write(render_count(count, args.spec))
    return 0
