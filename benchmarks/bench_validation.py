"""How checking a spec grows with its number of statements: ratios to the 100-statement case.

Shapes (each statement on one line, every spec under the reader's size limit):

- ``distinct``: ``encoder[-i].ffn:`` (i = 1..n): n different single layers of one site, none of
  which overlaps another (the case that used to grow quadratically, with up to 512 stack sizes
  tried per pair);
- ``same``: ``encoder.ffn: lite`` n times: every statement overrides every earlier one;
- ``mixed``: statements cycling over sites, methods, layer ranges and ``none``.

For each shape and count it times, in this process, ``vlsurgery.spec.validate`` and the ``check``
summary on the IR, and ``vlsurgery.spec.parse`` of the text (reading and validation), and
``vlsurgery check`` as a fresh process (interpreter start and imports included); it prints each as
seconds and as a ratio to n = 100.  Counts above the reader's statement limit are built as IR (from
texts parsed in chunks) and only validated and summarised.  Linear growth shows
as ratios close to n / 100; the pair counts of :class:`vlsurgery.spec.validate.Overlaps` are
printed too (``tests/spec/test_linear_validation.py`` asserts them).

Run: ``python benchmarks/bench_validation.py [--counts 100 200 600 1000 3000] [--no-cli]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dataclasses import replace

from vlsurgery.errors import SpecError
from vlsurgery.spec import parse, summarize, validate
from vlsurgery.spec.validate import Overlaps

SITES = ("encoder.ffn", "encoder.self_attn", "decoder.cross_attn", "decoder.ffn.in", "*.self_attn.v")


def spec_text(shape: str, n: int) -> str:
    if shape == "distinct":
        lines = [f"encoder[-{i}].ffn:" for i in range(1, n + 1)]
    elif shape == "same":
        lines = ["encoder.ffn: lite"] * n
    else:
        lines = []
        for i in range(n):
            site = SITES[i % len(SITES)]
            layers = ("", f"[{i % 12}]", f"[-{i % 7 + 1}]", f"[{i % 5}:{i % 5 + 2}]")[i % 4]
            stack, _, rest = site.partition(".")
            method = ("lite", "none", "ia3", "")[i % 4] if "." in rest else ("adapter", "none", "ia3", "")[i % 4]
            lines.append(f"{stack}{layers}.{rest}: {method}".rstrip())
    return "\n".join(lines) + "\n"


def build(shape: str, n: int, chunk: int = 500):
    """The spec as IR, parsed in chunks of ``chunk`` statements (above the reader's limit too)."""
    lines = spec_text(shape, n).splitlines()
    statements = []
    for start in range(0, n, chunk):
        statements += parse("\n".join(lines[start:start + chunk]) + "\n").statements
    return replace(parse(""), statements=tuple(statements))


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[100, 200, 600, 1000, 3000])
    ap.add_argument("--shapes", nargs="+", default=["distinct", "same", "mixed"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-cli", action="store_true", help="skip the `vlsurgery check` processes")
    args = ap.parse_args(argv)
    counts = sorted(set([100] + args.counts))
    keys = ("validate", "summary", "parse", "check")
    print(f"{'shape':9} {'n':>5} " + " ".join(f"{k + ' s':>10} {'ratio':>6}" for k in keys) + f" {'pairs':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes:
            base: dict = {}
            for n in counts:
                text, spec = spec_text(shape, n), build(shape, n)
                row = {"validate": best_of(lambda: validate(spec), args.repeats),
                       "summary": best_of(lambda: summarize(spec), args.repeats)}
                try:
                    parse(text)
                    row["parse"] = best_of(lambda: parse(text), args.repeats)
                except SpecError:  # over the reader's limits
                    pass
                if "parse" in row and not args.no_cli:
                    path = Path(tmp) / f"{shape}{n}.vls"
                    path.write_text(text)
                    cmd = [sys.executable, "-m", "vlsurgery.cli.main", "check", str(path)]
                    row["check"] = statistics.median(
                        best_of(lambda: subprocess.run(cmd, capture_output=True, check=False), 1)
                        for _ in range(args.repeats))
                for key, value in row.items():
                    base.setdefault(key, value)
                cells = [f"{row[k]:10.3f} {row[k] / base[k]:6.1f}" if k in row else f"{'-':>10} {'-':>6}"
                         for k in keys]
                print(f"{shape:9} {n:5d} " + " ".join(cells) + f" {Overlaps(spec.statements).comparisons:7d}",
                      flush=True)


if __name__ == "__main__":
    main()
