"""Tracing one layer class, once: the validated, cached graph every rewrite starts from.

:func:`trace_layer` is the entry point: it traces a layer with the fake-value tracer of
:mod:`vlsurgery.compiler.tracer`, validates the result against the original forward and caches
it (docs/design.md, "Tracing one layer").

A layer *class* is traced once per (class, leaf policy, dtype, fingerprint of the plain Python
attributes the body may read, such as ``is_decoder`` or a dropout probability) and the graph is
reused for every layer with the same key; the cache is the ``compiler.traces`` table of
:mod:`vlsurgery.caches`.  Each new trace is validated against the original forward on random
inputs (eval mode, and train mode with a fixed seed) with ``torch.equal`` before anyone can use
it; a class that cannot be traced raises :class:`CompileError` naming the class and the reason.
Nothing is ever returned half-traced.

Decisions fixed at trace time (documented, validated where possible; docs/design.md, "Decisions
fixed at trace time"): dtype branches; optional arguments are treated as *present*
(``encoder_hidden_states is not None`` in a decoder layer is true, so a decoder graph always runs
cross-attention), except memory states when the caller says the layer reads none
(``memories=False``: the profile's stack has no cross-attention, e.g. GPT-2, whose block refuses
them); plain attributes such as ``is_decoder``.  The ``@deprecate_kwarg`` renames of
the original forward (``past_key_values`` -> ``cache``) are not reproduced: transformers 5.x
callers already pass the new names.
"""

from __future__ import annotations

import copy
import inspect
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import fx, nn

from vlsurgery import caches
from vlsurgery.compiler.codegen import compile_forward, generate_source
from vlsurgery.compiler.install import PET_ATTR, is_rewritten
from vlsurgery.compiler.placement import dtype_device
from vlsurgery.compiler.tracer import LeafPolicy, LeafPolicyLike, TraceError, leaf_paths, trace_graph
from vlsurgery.compiler.validation import validate_forward
from vlsurgery.errors import CompileError

__all__ = ["LeafPolicy", "LeafPolicyLike", "TracedLayer", "cache_info", "clear_cache", "hidden_size", "leaf_paths",
           "trace_layer"]

#: Attributes that never influence what a layer body computes (excluded from the cache key).
_VOLATILE_ATTRS = frozenset({"training", "gradient_checkpointing", "_is_hf_initialized"})


@dataclass
class TracedLayer:
    """A validated fx graph of one layer class, shared by every layer with the same cache key.

    Treat ``graph`` as read-only: rewrites work on ``copy_graph()``.  ``signature`` is the real
    forward's signature; ``kwargs_name`` the name of its ``**kwargs`` (or None).
    """

    cls: type
    policy: LeafPolicy
    dtype: torch.dtype
    graph: fx.Graph
    signature: inspect.Signature
    kwargs_name: str | None
    source: str
    key: tuple = field(repr=False)
    trace_seconds: float = 0.0
    validate_seconds: float = 0.0

    def copy_graph(self) -> fx.Graph:
        """A private copy of the graph to rewrite (node.meta is copied shallowly)."""
        return copy.deepcopy(self.graph)

    @property
    def call_module_targets(self) -> list[str]:
        return [n.target for n in self.graph.nodes if n.op == "call_module"]


_TRACES = caches.table("compiler.traces")  # cache key -> TracedLayer


def clear_cache() -> None:
    """Forget every cache of the compiler: traced layers, runtime classes, leaf policies (tests; or
    after monkey-patching transformers).  Models already compiled keep working."""
    caches.clear("compiler.")


def cache_info() -> list[TracedLayer]:
    """The traced layers held in the cache, oldest first."""
    return list(_TRACES.values())


def _fingerprint(layer: nn.Module, policy: LeafPolicy) -> tuple:
    """What, besides the class, decides the traced graph: the module tree down to the leaves and
    the plain Python attributes of every module whose forward is inlined."""
    leaves = leaf_paths(layer, policy)
    items = []
    for name, mod in layer.named_modules():
        if name == PET_ATTR or any(name.startswith(p + ".") for p in leaves):
            continue
        entry: tuple = (name, type(mod))
        if name not in leaves:
            attrs = tuple(sorted(
                (k, v) for k, v in vars(mod).items()
                if k not in _VOLATILE_ATTRS and isinstance(v, (bool, int, float, str, type(None), torch.dtype))
            ))
            entry += (attrs,)
        items.append(entry)
    return tuple(items)


def hidden_size(layer: nn.Module) -> int:
    """Width of the residual stream: in_features of the layer's first nn.Linear (or GPT-2's Conv1D)."""
    from vlsurgery.methods.projections import is_projection, projection_dims

    for mod in layer.modules():
        if is_projection(mod):
            return projection_dims(mod)[0]
    raise CompileError(f"cannot tell the hidden size of {type(layer).__name__}: it has no nn.Linear; "
                       f"pass hidden=")


def _forward_signature(cls: type) -> tuple[Callable, inspect.Signature]:
    fn = inspect.unwrap(cls.forward)
    return fn, inspect.signature(fn)


def trace_layer(layer: nn.Module, leaf_policy: LeafPolicyLike, *, hidden: int | None = None,
                memories: bool = True) -> TracedLayer:
    """The validated graph of ``layer``'s class under ``leaf_policy`` (traced once, then cached).

    ``hidden``: the width of the residual stream, for layers without an nn.Linear to read it from.
    ``memories``: whether the layer reads memory states (``encoder_hidden_states``), a fact of the
    profile (its stack has a ``cross_attn`` sublayer); with False they are None while tracing and
    validating, so the cross-attention branch folds away.  Never guessed from a trial run: a layer
    that fails on memories for any reason must fail here, not be traced without them.
    Raises :class:`CompileError` naming the class and the reason when the class cannot be traced
    or the trace does not reproduce the original forward exactly.
    """
    policy = LeafPolicy.of(leaf_policy)
    cls = type(layer)
    if is_rewritten(cls):
        raise CompileError(f"{cls.__name__} is already rewritten by vlsurgery; restore it first")
    dtype, device = dtype_device(layer)
    key = (cls, policy, dtype, memories, _fingerprint(layer, policy))
    cached = _TRACES.get(key)
    if cached is not None:
        return cached

    fn, sig = _forward_signature(cls)
    d = hidden or hidden_size(layer)
    started = time.perf_counter()
    kwargs_name = next((p.name for p in sig.parameters.values() if p.kind is p.VAR_KEYWORD), None)
    try:
        graph = trace_graph(layer, policy, sig, d, dtype, device, cross=memories)
        src, _ = generate_source(graph)
    except CompileError:
        raise
    except Exception as exc:
        raise CompileError(f"cannot trace {cls.__qualname__} ({cls.__module__}): {_reason(exc)}"
                           f"{_dtype_hint(dtype)}") from exc
    traced = TracedLayer(cls, policy, dtype, graph, sig, kwargs_name, src, key,
                         trace_seconds=time.perf_counter() - started)

    started = time.perf_counter()
    forward = compile_forward(*generate_source(traced.copy_graph()), cls.__name__)
    validate_forward(layer, fn, forward, sig, d, what=f"the trace of {cls.__qualname__}", cross=memories)
    traced.validate_seconds = time.perf_counter() - started
    _TRACES[key] = traced
    return traced


def _dtype_hint(dtype) -> str:
    """Advice when a layer fails to trace in float16: some families branch on the values there
    (BART clamps fp16 activations after testing ``isfinite(...).all()``), a test no trace can fold."""
    if dtype != torch.float16:
        return ""
    return ("; the layer is in float16, where it branches on its values: compile and train in bfloat16 or "
            "float32 instead (model.to(torch.bfloat16) or model.float()), then use autocast for fp16 if needed")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, TraceError) else text
