"""Validation of a trace: the generated forward must equal the original, bit for bit.

:func:`example_inputs` builds random inputs from the layer's real signature (hidden states of the
layer's width, optional additive masks); :func:`validate_forward` runs the original and the
generated forward on them in eval mode (with and without masks) and in train mode with a fixed
seed, and compares every output with ``torch.equal``.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import torch
from torch import nn

from vlsurgery.compiler.placement import dtype_device
from vlsurgery.errors import CompileError


def example_inputs(sig: inspect.Signature, d: int, dtype: torch.dtype, device, *, masks: bool,
                   seed: int = 0, batch: int = 2, length: int = 5, memory: int = 7,
                   rotary: int | None = None, cross: bool = True) -> dict[str, Any]:
    """Random inputs for a layer forward, by parameter name.

    The first parameter is the hidden states (B, N, d); any other ``*hidden_states`` is a memory
    (B, M, d); ``*attention_mask`` parameters get an additive 4-D mask (B, 1, N, N or M) with some
    positions masked when ``masks`` is true, else None; ``position_embeddings`` (LLaMA's rotary
    ``(cos, sin)``, computed once per model and passed to every layer) gets two (B, N, ``rotary``)
    tensors when ``rotary`` (the head width, :func:`rotary_width`) is known; everything else takes
    its default (or None).  ``cross=False``: memories are None (a layer of a stack without
    cross-attention, ``trace.trace_layer``'s ``memories``).
    """
    gen = torch.Generator(device="cpu").manual_seed(seed)
    params = [p for p in list(sig.parameters.values())[1:]
              if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    out: dict[str, Any] = {}
    for i, p in enumerate(params):
        if i == 0:
            out[p.name] = torch.randn(batch, length, d, generator=gen).to(device=device, dtype=dtype)
        elif p.name.endswith("hidden_states"):
            out[p.name] = torch.randn(batch, memory, d, generator=gen).to(device=device, dtype=dtype) if cross else None
        elif p.name.endswith("attention_mask"):
            if masks:
                keys = memory if "encoder" in p.name else length
                m = torch.zeros(batch, 1, length, keys)
                m[-1, :, :, -2:] = torch.finfo(dtype).min  # last example: two padded keys
                out[p.name] = m.to(device=device, dtype=dtype)
            else:
                out[p.name] = None
        elif p.name == "position_embeddings" and rotary:
            out[p.name] = tuple(torch.randn(batch, length, rotary, generator=gen).to(device=device, dtype=dtype)
                                for _ in range(2))
        else:
            out[p.name] = None if p.default is inspect.Parameter.empty else p.default
    return out


def rotary_width(layer: nn.Module) -> int | None:
    """The width of the rotary ``(cos, sin)`` a layer takes: its attention's ``head_dim`` (None
    when no submodule has one)."""
    return next((m.head_dim for m in layer.modules() if isinstance(getattr(m, "head_dim", None), int)), None)


def validate_forward(layer: nn.Module, original: Callable, generated: Callable, sig, d: int, *,
                     what: str, cross: bool = True) -> None:
    """Run ``original(layer, ...)`` and ``generated(layer, ...)`` on the same random inputs in eval
    mode (with and without masks) and in train mode with a fixed seed; outputs must be
    ``torch.equal``.  The layer's mode and the global RNG state are left as they were."""
    was_training = layer.training
    dtype, device = dtype_device(layer)
    runs = [(False, False), (False, True), (True, False)]
    try:
        for train, masks in runs:
            inputs = example_inputs(sig, d, dtype, device, masks=masks, seed=1, rotary=rotary_width(layer), cross=cross)
            layer.train(train)
            outs = []
            for fn in (original, generated):
                with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]), torch.no_grad():
                    torch.manual_seed(1234)
                    try:
                        outs.append(fn(layer, **inputs))
                    except Exception as exc:
                        side = "the original forward" if fn is original else "the traced forward"
                        raise CompileError(f"validation of {what} failed: {side} raised "
                                           f"{type(exc).__name__}: {exc} "
                                           f"({'train' if train else 'eval'} mode{', with masks' if masks else ''})"
                                           ) from exc
            problem = _compare(outs[0], outs[1])
            if problem:
                raise CompileError(f"validation of {what} failed in {'train' if train else 'eval'} mode"
                                   f"{' with masks' if masks else ''}: {problem}")
    finally:
        layer.train(was_training)


def _compare(a, b, where: str = "output") -> str | None:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return f"{where}: {type(a).__name__} vs {type(b).__name__}"
        if a.shape != b.shape or a.dtype != b.dtype:
            return f"{where}: shape/dtype {tuple(a.shape)}/{a.dtype} vs {tuple(b.shape)}/{b.dtype}"
        if not torch.equal(a, b):
            return f"{where}: values differ (max abs diff {(a.double() - b.double()).abs().max().item():.3g})"
        return None
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        if len(a) != len(b):
            return f"{where}: {len(a)} vs {len(b)} elements"
        for i, (x, y) in enumerate(zip(a, b)):
            problem = _compare(x, y, f"{where}[{i}]")
            if problem:
                return problem
        return None
    if a is None and b is None:
        return None
    if type(a) is not type(b):
        return f"{where}: {type(a).__name__} vs {type(b).__name__}"
    return None
