"""RESULTS.md: the machine, the versions, every ratio with its spread, and the targets met or missed.

A ratio is printed as ``median (min-max)`` over the interleaved rounds of the run.  Absolute times are
context only: compare ratios, never absolute times across runs.
"""

from __future__ import annotations

import os
import platform
import time
from importlib import metadata

import torch

TIME_TARGET, MEMORY_TARGET, GEN_TARGET, COMPILE_48_S = 1.02, 1.02, 0.98, 1.0
#: operators that move no activation data: mask bookkeeping and views/casts
BOOKKEEPING = {"aten::to", "aten::cat", "aten::new_ones", "aten::new_empty", "aten::empty", "aten::fill_",
               "aten::narrow", "aten::slice", "aten::as_strided"}


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine(threads: int) -> dict:
    cpu = platform.processor() or "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu, "cores": os.cpu_count(),
            "threads": threads, "python": platform.python_version(), "torch": torch.__version__,
            "transformers": _version("transformers"), "peft": _version("peft"), "vlsurgery": _version("vlsurgery"),
            "platform": platform.platform(), "load_average_1min": round(os.getloadavg()[0], 1)}


def _r(d: dict) -> str:
    return f"{d['median']:.3f} ({d['low']:.3f}-{d['high']:.3f})"


def _within(d: dict, bound: float, at_most: bool = True) -> str:
    """A time ratio and, when its median misses ``bound`` but its spread reaches it, a note saying so."""
    missed = d["median"] > bound if at_most else d["median"] < bound
    reaches = d["low"] <= bound if at_most else d["high"] >= bound
    return _r(d) + (" (the spread includes the target: not resolved by this run)" if missed and reaches else "")


def _mark(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _step(results: list, targets: list) -> list[str]:
    out = ["## 1. Training step: VL-PET-large, compiled vs hand-fused, paper-style and the floor", "",
           "Forward, backward and AdamW on the trainable parameters; train mode (dropout on); fp32; every variant "
           "gets a new attention-mask tensor each step, as from a data loader.  "
           "Time: median (min-max) over the rounds of the per-round ratio.  Memory: peak bytes the allocator "
           "holds during one step (torch.profiler), a ratio of exact figures.", "",
           "| backbone | shape | compiled/fused | compiled/paper | compiled/floor | fused/floor | paper/floor |",
           "|---|---|---|---|---|---|---|"]
    for r in results:
        t = r["time"]
        out.append(f"| {r['backbone']} | {r['shape']} | {_r(t['compiled/fused'])} | {_r(t['compiled/paper'])} | "
                   f"{_r(t['compiled/floor'])} | {_r(t['fused/floor'])} | {_r(t['paper/floor'])} |")
    out += ["", "| backbone | step s (compiled / fused / paper / floor) | peak MiB (compiled / fused / paper / floor) "
            "| memory compiled/fused | compiled/paper | aten calls (compiled / fused / paper / floor) | trainable |",
            "|---|---|---|---|---|---|---|"]
    for r in results:
        s, m, a = r["seconds"], r["peak_mib"], r["aten_calls"]
        names = ("compiled", "fused", "paper", "floor")
        trainable = r["trainable"]
        same = "equal: " + f"{trainable['compiled']:,}" if len(set(trainable.values())) == 1 else str(trainable)
        out.append(f"| {r['backbone']} | {' / '.join(str(s[n]) for n in names)} | {' / '.join(str(m[n]) for n in names)}"
                   f" | {r['memory']['compiled/fused']:.3f} | {r['memory']['compiled/paper']:.3f} | "
                   f"{' / '.join(str(a[n]) for n in names)} | {same} |")
    for r in results:
        excess, t = r["ops_compiled_over_fused"], r["time"]
        out += ["", f"{r['backbone']}: operators the compiled step runs more often than the hand-fused one: "
                + (", ".join(f"`{k}` +{v}" for k, v in excess.items()) or "none") + "; the other way: "
                + (", ".join(f"`{k}` +{v}" for k, v in r["ops_fused_over_compiled"].items()) or "none") + "."]
        if excess and set(excess) <= BOOKKEEPING:
            out.append("All of them are bookkeeping (mask building, casts, views), no arithmetic on activations; "
                       "still a regression: the prefix pass extends the mask once per mask tensor and casts only "
                       "where the dtype changes, so the whole step should run exactly the hand-fused operators.")
        if "layout_differences" in r:
            calls = r["python_calls"]
            out.append(f"Layouts: {r['layout_differences']} operator calls differ between the two steps in input shapes "
                       f"or strides (0: every operator runs on the same shapes and memory layouts).  Python function "
                       f"calls per step (cProfile): {calls['compiled']} compiled, {calls['fused']} hand-fused (the "
                       "compiled sites are small modules calling modules; each call costs about a microsecond).")
            targets.append((f"{r['backbone']}: same operator shapes and strides, whole step, compiled and hand-fused",
                            r["layout_differences"] == 0, f"{r['layout_differences']} differing calls"))
        if "layer_ops_compiled_over_fused" in r:
            layer = r["layer_ops_compiled_over_fused"]
            targets.append((f"{r['backbone']}: operator parity of the generated layer code (one encoder layer, "
                            "forward + backward), compiled <= hand-fused", not layer, f"{sum(layer.values())} extra calls"))
        targets.append((f"{r['backbone']}: operator parity, whole step, compiled <= hand-fused for every aten operator",
                        not excess, f"{sum(excess.values())} extra calls"))
        targets.append((f"{r['backbone']}: peak memory compiled/fused <= {MEMORY_TARGET}",
                        r["memory"]["compiled/fused"] <= MEMORY_TARGET, f"{r['memory']['compiled/fused']:.3f}"))
        for key in ("compiled/fused", "compiled/paper"):
            targets.append((f"{r['backbone']}: step time {key} <= {TIME_TARGET}", t[key]["median"] <= TIME_TARGET,
                            _within(t[key], TIME_TARGET)))
        profiles = r.get("profile", {})
        if {"compiled", "fused"} <= set(profiles):
            calls = {name: {op: n for op, _, n in rows} for name, rows in profiles.items()}
            shared = [op for op in calls["compiled"] if op in calls["fused"]]
            same = [op for op in shared if calls["compiled"][op] == calls["fused"][op]]
            ms = {name: sum(m for op, m, _ in profiles[name] if op in shared) for name in ("compiled", "fused")}
            out += ["", f"Profile of the miss ({r['backbone']}): of the most expensive operators, {len(same)} of "
                    f"{len(shared)} run exactly as many times in both steps; their self time adds up to "
                    f"{ms['compiled']:.0f} ms (compiled) and {ms['fused']:.0f} ms (hand-fused) in two profiled steps "
                    "taken one after the other.  Equal work, so a time difference is the machine's, not the code's, "
                    "unless it persists across rounds beyond the spread."]
        for name, rows in r.get("profile", {}).items():
            out += ["", f"Where the time goes ({r['backbone']}, {name}, one step, self CPU time):", "",
                    "| operator | self ms | calls |", "|---|---|---|"]
            out += [f"| `{op}` | {ms:.1f} | {n} |" for op, ms, n in rows]
    return out + [""]


def _lora(results: list, targets: list) -> list[str]:
    out = ["## 2. LoRA: vlsurgery vs PEFT", ""]
    for r in results:
        if "skipped" in r:
            out.append(f"{r['backbone']}: skipped ({r['skipped']}).")
            continue
        out += [f"{r['backbone']}, PEFT {r['peft']}, r={r['r']} alpha={r['alpha']}, {r['sites']} projections "
                f"(q and v of every attention), {r['shape']}:", "",
                "| trainable (vlsurgery / peft) | max logit diff | time vlsurgery/peft | step s (vlsurgery / peft) "
                "| peak MiB (vlsurgery / peft) | memory ratio | aten calls (vlsurgery / peft) |",
                "|---|---|---|---|---|---|---|",
                f"| {r['trainable']['vlsurgery']:,} / {r['trainable']['peft']:,} | {r['max_logit_diff']:.2e} | "
                f"{_r(r['time']['vlsurgery/peft'])} | {r['seconds']['vlsurgery']} / {r['seconds']['peft']} | "
                f"{r['peak_mib']['vlsurgery']} / {r['peak_mib']['peft']} | {r['memory']['vlsurgery/peft']:.3f} | "
                f"{r['aten_calls']['vlsurgery']} / {r['aten_calls']['peft']} |", "",
                "Operators vlsurgery runs more often than PEFT: "
                + (", ".join(f"`{k}` +{v}" for k, v in r["ops_vlsurgery_over_peft"].items()) or "none") + ".", ""]
        targets.append((f"{r['backbone']}: LoRA equal trainable count and logits",
                        r["trainable"]["vlsurgery"] == r["trainable"]["peft"] and r["max_logit_diff"] < 1e-4,
                        f"diff {r['max_logit_diff']:.1e}"))
        targets.append((f"{r['backbone']}: LoRA time vlsurgery/peft <= {TIME_TARGET}",
                        r["time"]["vlsurgery/peft"]["median"] <= TIME_TARGET,
                        _within(r["time"]["vlsurgery/peft"], TIME_TARGET)))
        targets.append((f"{r['backbone']}: LoRA peak memory equal (<= 1.00)", r["memory"]["vlsurgery/peft"] <= 1.0,
                        f"{r['memory']['vlsurgery/peft']:.3f}"))
    return out


def _compiler(compile_: dict, count: list, targets: list) -> list[str]:
    out = ["## 3. Compiler cost", "",
           f"VL-PET-large compiled onto BART-family models of width {compile_['width']} with n layers in all "
           "(n/2 encoder + n/2 decoder).  Cold: caches cleared (includes tracing, once per layer class); "
           "warm: traces cached.  Model construction is not included.", "",
           "| layers | cold s | warm s | construction s |", "|---|---|---|---|"]
    out += [f"| {r['layers']} | {r['cold_s']} | {r['warm_s']} | {r['construct_s']} |" for r in compile_["rows"]]
    fc, fw = compile_["fit_cold"], compile_["fit_warm"]
    out += ["", f"Least-squares line: cold {fc['seconds_per_layer'] * 1000:.2f} ms/layer + {fc['intercept_s']} s "
            f"(largest deviation {fc['max_relative_deviation']:.0%}); warm {fw['seconds_per_layer'] * 1000:.2f} "
            f"ms/layer + {fw['intercept_s']} s (largest deviation {fw['max_relative_deviation']:.0%}).", "",
            "`vlsurgery.count` of VL-PET-large (no model built):", "",
            "| preset | first call s | median s | trainable % |", "|---|---|---|---|"]
    out += [f"| {r['preset']} | {r['first_s']} | {r['median_s']} | {r['trainable_percent']} |" for r in count]
    row48 = [r for r in compile_["rows"] if r["layers"] == 48]
    if row48:
        targets.append((f"48-layer compile < {COMPILE_48_S} s (cold)", row48[0]["cold_s"] < COMPILE_48_S,
                        f"{row48[0]['cold_s']} s"))
    targets.append(("compile time linear in layers (largest deviation from the line <= 25 %)",
                    fc["max_relative_deviation"] <= 0.25, f"{fc['max_relative_deviation']:.0%}"))
    return out + [""]


def _generate(results: list, targets: list) -> list[str]:
    out = ["## 4. generate(): compiled (identity sites) vs original and hand-fused", "",
           "tokens/s ratio = reference time / compiled time per round (above 1: the compiled model is faster).  "
           "FLOP ratio: original / compiled matrix-product FLOPs, exact (profiler): how much arithmetic the "
           "identity sites add.  It is not a bound on tokens/s (generate() also pays per-token overhead the "
           "sites do not add to), so the measured ratio can lie above it.", "",
           "| backbone | mode | same tokens | compiled/original | FLOP ratio | compiled/fused | tokens/s (compiled / fused "
           "/ original) |", "|---|---|---|---|---|---|---|"]
    for r in results:
        for mode in ("greedy", "beam"):
            g = r[mode]
            label = mode if mode == "greedy" else f"beam {r['beams']}"
            flops = g.get("matmul_flops", {})
            flop_ratio = f"{flops['original'] / flops['compiled']:.3f}" if flops.get("compiled") else "n/a"
            fused = g.get("speed_ratio_fused")
            speeds = g["tokens_per_s"]
            out.append(f"| {r['backbone']} | {label}, batch {r['batch']}, {r['prompt']} -> +{r['new_tokens']} | "
                       f"{g['same_tokens']} | {_r(g['speed_ratio'])} | {flop_ratio} | {_r(fused) if fused else 'n/a'} | "
                       + " / ".join(str(speeds.get(name, "-")) for name in ("compiled", "fused", "original")) + " |")
            targets.append((f"{r['backbone']} {mode}: tokens/s compiled/original >= {GEN_TARGET} (FLOP ratio with "
                            f"the identity sites' arithmetic: {flop_ratio})",
                            g["speed_ratio"]["median"] >= GEN_TARGET and g["same_tokens"],
                            _within(g["speed_ratio"], GEN_TARGET, at_most=False)))
            if fused:
                targets.append((f"{r['backbone']} {mode}: tokens/s compiled/hand-fused >= {GEN_TARGET}",
                                fused["median"] >= GEN_TARGET and g["same_tokens"],
                                _within(fused, GEN_TARGET, at_most=False)))
            if "over_fused" in g:
                over = g["over_fused"]
                targets.append((f"{r['backbone']} {mode}: operator parity per generate(), compiled <= hand-fused",
                                not over, f"{sum(over.values())} extra calls"))
    notes = [f"{r['backbone']} {mode}: {r[mode]['extra_calls'][0]} extra aten calls per generate() at "
             f"{r['new_tokens']} new tokens, {r[mode]['extra_calls'][1]} at {2 * r['new_tokens']}"
             for r in results for mode in ("greedy", "beam") if "extra_calls" in r[mode]]
    if notes:
        out += ["", "Identity sites still run their arithmetic (a gate saturated to 1 is still a sigmoid of a "
                "matrix product; a zero up-projection still multiplies).  Extra operator calls of the compiled model "
                "over the original: " + "; ".join(notes) + ".  Equal counts at n and 2n tokens mean one-time work per "
                "call (the encoder's sites, and the decoder's cross-attention values, which the KV cache then holds), "
                "none per token: every one of them is a site's matrix product, activation, sigmoid, product or sum, "
                "the operators the hand-fused reference runs too (compiled <= hand-fused for every operator, above)."]
    return out + [""]


def _dynamo(results: list, targets: list) -> list[str]:
    out = ["## 5. torch.compile of the compiled model", ""]
    if not results:
        return out + ["Not run in this mode.", ""]
    out += ["| backbone | backend | first call s | graph breaks | step time torch.compile/eager | step s (compiled / eager) |",
            "|---|---|---|---|---|---|"]
    for r in results:
        if "failed" in r:
            out.append(f"| {r['backbone']} | {r['backend']} | failed: {r['failed']} | | | |")
            continue
        s = r["seconds"]
        out.append(f"| {r['backbone']} | {r['backend']} | {r['first_call_s']} | {r['graph_breaks']} | "
                   f"{_r(r['time']['torch.compile/eager'])} | {s['torch.compile']} / {s['eager']} |")
        for where in r.get("break_sites", []):
            out.append(f"|  | break: {where} | | | | |")
    return out + [""]


def render(results: dict, command: str) -> str:
    m = results["machine"]
    written = (f"Written from the runs {command} (concurrent processes, each item's ratios measured within one "
               f"process)" if results.get("merged") else f"Written by `{command}`")
    out = ["# Benchmark results", "",
           f"{written} on {m['date']} in {results['wall_s']} s of measuring.  Regenerate with "
           "`python -m benchmarks.run` (full, about an hour on 2 idle cores) or `--quick` (a few minutes on 2 idle "
           "cores).  Every number is a ratio measured within one process, interleaved, as median (min-max) over the rounds; the machine is "
           "shared and noisy, so never compare absolute times across runs.", "",
           f"Machine: {m['cpu']}, {m['cores']} cores, {m['threads']} torch threads, {m['platform']}.  Versions: Python "
           f"{m['python']}, torch {m['torch']}, transformers {m['transformers']}, peft {m['peft']}, vlsurgery "
           f"{m['vlsurgery']}.  Random weights, fp32."
           + (f"  Load average (1 min) when the report was written: {m['load_average_1min']} on {m['cores']} cores."
              if "load_average_1min" in m else ""), ""]
    if results.get("mode") != "full":
        out += [f"This report comes from a `--{results.get('mode')}` run (fewer rounds and backbones); the full run, "
                "`python -m benchmarks.run`, has not produced it.", ""]
    targets: list = []
    body: list[str] = []
    sections = [("step", "1. Training step", lambda: _step(results["step"], targets)),
                ("lora", "2. LoRA: vlsurgery vs PEFT", lambda: _lora(results["lora"], targets)),
                ("compile", "3. Compiler cost", lambda: _compiler(results["compile"], results["count"], targets)),
                ("generate", "4. generate()", lambda: _generate(results["generate"], targets)),
                ("dynamo", "5. torch.compile of the compiled model", lambda: _dynamo(results["dynamo"], targets))]
    for key, title, section in sections:
        body += section() if key in results else [f"## {title}", "", "Not measured in this run.", ""]
    out += ["## Targets", "", "| target | measured | |", "|---|---|---|"]
    out += [f"| {name} | {value} | {_mark(ok)} |" for name, ok, value in targets]
    out += ["", *body, "## GPU", "",
            "GPU figures are not yet measured: `python -m benchmarks.gpu_step` runs item 1 on CUDA in bf16 at the "
            "paper's batch sizes (VL-BART 500, VL-T5 300, halved until they fit), with and without torch.compile; "
            "without CUDA it says so and exits 0.", ""]
    return "\n".join(out)
