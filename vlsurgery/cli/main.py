"""The ``vlsurgery`` command line.

Each sub-command is a module of this package with ``add_parser(subparsers)`` (registers its
parser and sets ``run`` as the default ``func``) and ``run(args) -> int`` (the exit status); they
are listed, in help order, in :data:`COMMANDS`.

Exit status: 0 success; 1 the spec has errors or cannot be read (a missing file included: it is a
problem of the input, reported like any other spec error); 2 the command line itself is wrong
(unknown flag, missing argument, contradictory options).  Errors a user can cause never print a
traceback.  ``diff`` is the exception: like diff(1) it exits 0 identical, 1 different, 2 trouble.
A reader that goes away (``vlsurgery count --json SPEC | head -1``) ends any command quietly,
with status 141 (128 + SIGPIPE, what a shell reports for a process killed by a broken pipe).
"""

from __future__ import annotations

import argparse
import os
import sys

from vlsurgery.cli import check, compile, count, demo, diff, draw, fmt, merge, plan, search, specs, train
from vlsurgery.errors import SpecError, UsageError, VLSurgeryError

#: Sub-command modules, in the order ``vlsurgery --help`` lists them.
COMMANDS = (check, fmt, plan, count, search, diff, draw, compile, merge, specs, train, demo)

EXIT_OK, EXIT_SPEC, EXIT_USAGE, EXIT_PIPE = 0, 1, 2, 141


def version() -> str:
    try:
        from importlib.metadata import version as dist_version

        return dist_version("vlsurgery")
    except Exception:  # not installed (running from a source tree)
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vlsurgery",
        description="A declarative model-surgery language and compiler for parameter-efficient tuning.",
        epilog="Exit status: 0 ok, 1 spec errors (or an unreadable spec), 2 command-line errors.")
    parser.add_argument("--version", action="version", version=f"vlsurgery {version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script passes it to sys.exit)."""
    try:
        status = _main(argv)
        sys.stdout.flush()  # a closed pipe shows here at the latest, not in the interpreter's exit
        return status
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_PIPE


def _silence_stdout() -> None:
    """Point stdout at the null device, so that the interpreter's last flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a real file (a test's capture): nothing to flush
        pass


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse: --help/--version (0) or a usage error (2)
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    try:
        return args.func(args)
    except SpecError as e:
        print(e.render(), file=sys.stderr)
        return EXIT_SPEC
    except UsageError as e:
        print(f"vlsurgery {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except VLSurgeryError as e:
        print(f"vlsurgery {args.command}: error: {e}", file=sys.stderr)
        return EXIT_SPEC
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
