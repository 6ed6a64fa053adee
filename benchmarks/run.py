"""The benchmark entry point: ``python -m benchmarks.run [--quick] [--json PATH]``.

Runs, in one process and on ``--threads`` intra-op threads (2 by default), every item of the
benchmark, each as ratios against a baseline measured in the same run, interleaved, with the spread
over rounds, and writes ``benchmarks/RESULTS.md`` (machine, versions, medians and spread):

1. ``step``:     VL-PET-large train step, compiled vs hand-fused, paper-style and the frozen floor
2. ``lora``:     LoRA through vlsurgery vs PEFT (skipped when peft is not installed)
3. ``compiler``: compile time against layer count; ``count`` on the largest presets
4. ``generate``: greedy and beam generate() tokens/s, compiled with identity sites vs original
5. ``dynamo``:   torch.compile of the compiled model vs eager

Modes: the full run (BART-base and T5-base shapes, 9 rounds; about an hour on 2 cores),
``--quick`` (BART-base only for the slow items, 3 rounds; a few minutes) and ``--tiny`` (the tiny
presets, for the smoke test; seconds; torch.compile skipped).  ``--only`` runs some items;
``--json`` keeps the raw results (rewritten after every item) and ``--render JSON`` writes the
report from them again without measuring.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from benchmarks.workloads import PAPER, TINY, Shape

ITEMS = ("step", "lora", "compiler", "generate", "dynamo")
DEFAULT_OUT = Path(__file__).resolve().parent / "RESULTS.md"


@dataclass
class Config:
    mode: str
    backbones: tuple[str, ...]
    shape: Shape
    rounds: int
    lora_backbones: tuple[str, ...]
    layers: list[int]
    width: int
    count_presets: tuple[str, ...]
    gen_backbones: tuple[str, ...]
    new_tokens: int
    beams: int
    dynamo_backbones: tuple[str, ...]
    dynamo_rounds: int
    notes: list[str] = field(default_factory=list)


def config(mode: str) -> Config:
    if mode == "tiny":
        return Config("tiny", ("tiny-bart",), TINY, 2, ("tiny-bart",), [2, 4], 64, ("t5-3b",),
                      ("tiny-bart",), 2, 2, (), 0)
    if mode == "quick":
        return Config("quick", ("bart-base", "t5-base"), PAPER, 3, ("bart-base",), [6, 12, 24, 48], 512,
                      ("t5-3b", "bart-large"), ("bart-base",), 10, 4, ("bart-base",), 3)
    return Config("full", ("bart-base", "t5-base"), PAPER, 9, ("bart-base", "t5-base"), [6, 12, 24, 48, 96], 512,
                  ("t5-3b", "t5-large", "flan-t5-large", "bart-large"), ("bart-base", "t5-base"), 20, 4,
                  ("bart-base", "t5-base"), 5)


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(cfg: Config, items: tuple[str, ...], checkpoint=lambda results: None) -> dict:
    """Every item of ``items``; ``checkpoint(results)`` is called after each backbone of each item, so
    that an interrupted run keeps what it measured."""
    from benchmarks import compiler_cost, dynamo_step, generation, lora_peft, step

    results: dict = {"mode": cfg.mode, "items": list(items)}
    for _, fn in _items(cfg, items, compiler_cost, dynamo_step, generation, lora_peft, step, checkpoint):
        fn(results)
        checkpoint(results)
    return results


def _items(cfg, items, compiler_cost, dynamo_step, generation, lora_peft, step, checkpoint):
    def each(key, backbones, measure):
        def fn(results):
            results.setdefault(key, [])
            for backbone in backbones:
                _log(f"{key} {backbone}")
                results[key].append(measure(backbone))
                checkpoint(results)
        return fn

    def compiler(results):
        _log(f"compile cost {cfg.layers}")
        results["compile"] = compiler_cost.run_compile_cost(cfg.layers, cfg.width)
        results["count"] = compiler_cost.run_count_cost(cfg.count_presets)

    table = {
        "step": each("step", cfg.backbones, lambda b: step.run_step(b, cfg.shape, cfg.rounds, explain=cfg.mode != "tiny")),
        "lora": each("lora", cfg.lora_backbones, lambda b: lora_peft.run_lora(b, cfg.shape, cfg.rounds)),
        "compiler": compiler,
        "generate": each("generate", cfg.gen_backbones, lambda b: generation.run_generation(
            b, cfg.shape, cfg.new_tokens, cfg.beams, max(cfg.rounds // 2, 2))),
        "dynamo": each("dynamo", cfg.dynamo_backbones, lambda b: dynamo_step.run_dynamo(b, cfg.shape, cfg.dynamo_rounds)),
    }
    return [(item, table[item]) for item in ITEMS if item in items]


RESULT_KEYS = ("step", "lora", "compile", "count", "generate", "dynamo")


def merge(runs: list[dict]) -> dict:
    """One report's results from several runs of different items (each ratio stays within its run)."""
    if len(runs) == 1:
        return runs[0]
    merged = {"machine": runs[0]["machine"], "wall_s": sum(r.get("wall_s", 0) for r in runs),
              "mode": runs[0].get("mode"), "command": " and ".join(f"`{r.get('command')}` ({', '.join(r.get('items', []))})" for r in runs),
              "merged": True}
    for run_ in runs:
        merged.update({key: run_[key] for key in RESULT_KEYS if key in run_})
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="fewer rounds, BART-base only for the slow items")
    size.add_argument("--tiny", action="store_true", help="tiny presets (the smoke test); numbers mean nothing")
    parser.add_argument("--json", type=Path, help="also write the raw results as JSON here")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the Markdown report (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (default: %(default)s)")
    parser.add_argument("--only", nargs="+", choices=ITEMS, help="run only these items")
    parser.add_argument("--render", type=Path, nargs="+", metavar="JSON",
                        help="measure nothing: write the report from raw results saved with --json (several: "
                             "runs of different items, merged)")
    args = parser.parse_args(argv)

    from benchmarks.report import machine, render

    if args.render:
        results = merge([json.loads(path.read_text()) for path in args.render])
        args.out.write_text(render(results, results.get("command", "python -m benchmarks.run")))
        _log(f"wrote {args.out} from {args.render}")
        return 0
    torch.set_num_threads(args.threads)
    cfg = config("tiny" if args.tiny else "quick" if args.quick else "full")
    items = tuple(args.only or ITEMS)
    command = "python -m benchmarks.run" + {"tiny": " --tiny", "quick": " --quick", "full": ""}[cfg.mode]
    command += f" --only {' '.join(items)}" if args.only else ""
    start = time.perf_counter()

    def checkpoint(results):  # an interrupted run keeps its finished items
        results.update(machine=machine(args.threads), wall_s=round(time.perf_counter() - start, 1), command=command)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, default=str))

    results = run(cfg, items, checkpoint)
    checkpoint(results)
    args.out.write_text(render(results, command))
    _log(f"wrote {args.out} in {results['wall_s']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
