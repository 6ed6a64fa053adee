"""The fake-value tracer: torch.fx on one transformer layer, the way transformers 5.x layers need it.

Plain ``torch.fx.symbolic_trace`` fails on every BART/T5 layer of transformers 5.x.  This tracer
handles what stands in the way (docs/design.md, "Tracing one layer" and "torch.fx and
transformers internals relied on"):

* wrapped forwards (``GradientCheckpointingLayer`` re-wraps ``forward`` as ``(self, *args,
  **kwargs)``; ``@deprecate_kwarg``): the real forward is found with :func:`inspect.unwrap` and
  the placeholders come from its signature;
* ``**kwargs`` splatted into child calls: the generated forward gets a real ``**kwargs`` that is
  forwarded to every leaf call that received it (nothing is frozen);
* ``if hidden_states.dtype == torch.float16`` and tuple unpacking: every node carries a fake-tensor
  value (``FakeTensorMode(allow_non_fake_inputs=True)``), and ``.dtype``/``.device``/``len``/
  iteration are answered from it, so dtype branches fold away.  Data-dependent control flow (the
  fp16 clamp of BART, ``isfinite(...).all()``) cannot be traced and is reported;
* ``self.training`` becomes a graph-level read (``training = self.training``) so dropout follows
  ``.train()``/``.eval()`` of the layer the code runs on.

Which submodules stay opaque (``call_module`` nodes) is the *leaf policy*: a depth (``1`` = direct
children, BART; ``3`` = ``layer.<i>.<child>``, T5, so the ``T5Layer*`` wrappers are inlined and
the un-normalised sublayer input is visible) or a predicate ``(qualname, module) -> bool``.
Modules of ``torch.nn`` itself are always leaves, and so is the layer's ``pet`` (site modules are
never part of a trace).

:func:`trace_graph` is the raw trace; :mod:`vlsurgery.compiler.trace` caches and validates it.
"""

from __future__ import annotations

import inspect
import math
import operator
from dataclasses import dataclass
from typing import Any, Callable, Union

import torch
from torch import fx, nn
from torch.fx._symbolic_trace import _maybe_revert_all_patches
from torch.fx.node import map_aggregate

from vlsurgery.compiler.codegen import SPLAT
from vlsurgery.compiler.install import PET_ATTR
from vlsurgery.compiler.validation import example_inputs, rotary_width
from vlsurgery.errors import UsageError

#: Tensor attributes answered from the fake value at trace time (they decide dtype branches).
#: Shapes are deliberately *not* in this set: they vary between calls.
_STATIC_TENSOR_ATTRS = frozenset({"dtype", "device", "layout", "is_cuda", "is_sparse", "is_quantized", "is_meta"})

LeafPolicyLike = Union[int, Callable[[str, nn.Module], bool], "LeafPolicy"]


# ----------------------------------------------------------------------------------------------
# leaf policy


@dataclass(frozen=True)
class LeafPolicy:
    """Which submodules of a layer stay opaque ``call_module`` nodes.

    ``LeafPolicy(depth=1)``: every direct child (BART).  ``LeafPolicy(depth=3)``: modules three
    dots down, ``layer.<i>.<child>`` (T5).  ``LeafPolicy(predicate=f)`` with
    ``f(qualname, module) -> bool``.  Modules of ``torch.nn`` are leaves in any case.  The policy is
    part of the trace cache key: pass the same module-level predicate to share traces.
    """

    depth: int | None = None
    predicate: Callable[[str, nn.Module], bool] | None = None

    def __post_init__(self):
        if (self.depth is None) == (self.predicate is None):
            raise UsageError("LeafPolicy needs exactly one of depth= or predicate=")
        if self.depth is not None and (not isinstance(self.depth, int) or self.depth < 1):
            raise UsageError(f"LeafPolicy depth must be a positive integer, got {self.depth!r}")

    @classmethod
    def of(cls, policy: LeafPolicyLike) -> "LeafPolicy":
        """Normalise an int depth, a predicate or a LeafPolicy."""
        if isinstance(policy, LeafPolicy):
            return policy
        if isinstance(policy, int) and not isinstance(policy, bool):
            return cls(depth=policy)
        if callable(policy):
            return cls(predicate=policy)
        raise UsageError(f"a leaf policy is a depth (int) or a predicate (qualname, module) -> bool, "
                         f"got {policy!r}")

    def __call__(self, qualname: str, module: nn.Module) -> bool:
        if not qualname:
            return False
        if self.depth is not None:
            return qualname.count(".") + 1 >= self.depth
        return bool(self.predicate(qualname, module))


_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict, nn.ParameterList, nn.ParameterDict)


def _is_torch_nn(module: nn.Module) -> bool:
    """fx's default leaf rule (modules of torch.nn), minus containers, which are never called."""
    mod = type(module).__module__
    return (mod.startswith("torch.nn") or mod.startswith("torch.ao.nn")) and not isinstance(module, _CONTAINERS)


def leaf_paths(layer: nn.Module, policy: LeafPolicyLike) -> dict[str, nn.Module]:
    """The leaves of ``layer`` under ``policy`` (qualname -> module), in module order."""
    policy = LeafPolicy.of(policy)
    leaves: dict[str, nn.Module] = {}
    for name, mod in layer.named_modules():
        if not name or any(name.startswith(p + ".") for p in leaves):
            continue
        if name == PET_ATTR or policy(name, mod) or _is_torch_nn(mod):
            leaves[name] = mod
    return leaves


# ----------------------------------------------------------------------------------------------
# the tracer


class _NoValue:
    """Marks a node whose fake value could not be computed; holds the reason."""

    def __init__(self, reason: str):
        self.reason = reason

    def __repr__(self):
        return f"<no value: {self.reason}>"


class _ValueProxy(fx.Proxy):
    """A Proxy that answers static questions (dtype, device, tuple length) from its fake value."""

    def _value(self, what: str):
        val = self.node.meta.get("val")
        if isinstance(val, _NoValue) or "val" not in self.node.meta:
            reason = val.reason if isinstance(val, _NoValue) else "no value recorded"
            raise TraceError(f"{what} of '{self.node.name}' needs its value, which is unknown ({reason})")
        return val

    def __getattr__(self, k):
        if k in _STATIC_TENSOR_ATTRS:
            val = self._value(f"'.{k}'")
            if isinstance(val, torch.Tensor):
                return getattr(val, k)
        return super().__getattr__(k)

    def __len__(self):
        val = self._value("len()")
        if isinstance(val, (tuple, list)):
            return len(val)
        raise TraceError(f"len() of '{self.node.name}' depends on a tensor shape; cannot be traced")


class TraceError(Exception):
    """Internal: why a trace failed (turned into CompileError naming the class)."""


class _LazyTraining(fx.Proxy):
    """``self.training`` of one module: a get_attr node, made on first use."""

    def __init__(self, tracer: "_LayerTracer", qualname: str, value: bool):
        self.tracer = tracer
        self._qualname = qualname
        self._flag = value
        self._node = None

    @property
    def node(self):  # noqa: D401 - fx reads .node
        if self._node is None:
            target = f"{self._qualname}.training" if self._qualname else "training"
            self._node = self.tracer.create_proxy("get_attr", target, (), {}).node
        return self._node


class _LayerTracer(fx.Tracer):
    def __init__(self, policy: LeafPolicy, fake_mode, examples: dict[str, Any]):
        super().__init__(autowrap_modules=(math,))
        self._policy = policy
        self._fake_mode = fake_mode
        self._examples = examples

    # -- structure --------------------------------------------------------------------------
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return _is_torch_nn(m) or self._policy(qualname, m)

    def create_args_for_root(self, root_fn, is_module, concrete_args=None):
        # fx inspects one function and calls another when forward is wrapped; unwrap first.
        root_fn, args = super().create_args_for_root(inspect.unwrap(root_fn), is_module, concrete_args)
        # The body receives `**kwargs` as a real dict, so that `**kwargs` splats work; its one
        # entry records the splat in the kwargs of every call it reaches.
        args = [{SPLAT: a} if isinstance(a, fx.Proxy) and str(a.node.target).startswith("**") else a
                for a in args]
        return root_fn, args

    #: parameters the traced body sees as None (the placeholder is kept, so the signature is too)
    absent: set = frozenset()

    def _proxy_placeholder(self, name, concrete_args, sig, fn_for_analysis):
        if name.startswith("*") and not name.startswith("**"):
            raise TraceError(f"a '{name}' parameter cannot be traced")
        proxy = super()._proxy_placeholder(name, concrete_args, sig, fn_for_analysis)
        return None if name in self.absent else proxy

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _ValueProxy(node, self)

    def to_bool(self, obj):
        raise TraceError(f"data-dependent control flow on '{obj.node.name}' (a Python `if`, `and`, `or` "
                         f"or `assert` on a traced value)")

    def iter(self, obj):
        val = obj._value("iteration") if isinstance(obj, _ValueProxy) else None
        if isinstance(val, (tuple, list)):
            return iter([obj[i] for i in range(len(val))])
        raise TraceError(f"iterating '{obj.node.name}' depends on a tensor shape; cannot be traced")

    def keys(self, obj):
        raise TraceError(f"'**{obj.node.name}' of a traced value cannot be traced")

    # -- values -----------------------------------------------------------------------------
    def create_node(self, kind, target, args, kwargs, name=None, type_expr=None):
        node = super().create_node(kind, target, args, kwargs, name, None)
        node.meta["val"] = self._compute(node)
        return node

    def _compute(self, node: fx.Node):
        if node.op == "output":
            return None
        if node.op == "placeholder":
            key = node.target.lstrip("*")
            return {} if node.target.startswith("**") else self._examples.get(key)
        try:
            args = map_aggregate(node.args, _val)
            kwargs = {k: map_aggregate(v, _val) for k, v in node.kwargs.items() if k != SPLAT}
            for v in _flatten((args, kwargs)):
                if isinstance(v, _NoValue):
                    return v
            with _maybe_revert_all_patches(), self._fake_mode, torch.no_grad():
                if node.op == "get_attr":
                    val = _getattr_path(self.root, node.target)
                    return val._flag if isinstance(val, _LazyTraining) else val
                if node.op == "call_function":
                    return node.target(*args, **kwargs)
                if node.op == "call_method":
                    return getattr(args[0], node.target)(*args[1:], **kwargs)
                if node.op == "call_module":
                    return self.root.get_submodule(node.target)(*args, **kwargs)
        except Exception as exc:  # recorded; only fatal if someone needs this value
            return _NoValue(f"{type(exc).__name__}: {exc}")
        return _NoValue(f"unknown node kind {node.op}")


def _val(n):
    return n.meta.get("val", _NoValue("no value")) if isinstance(n, fx.Node) else n


def _flatten(x):
    if isinstance(x, (tuple, list)):
        for y in x:
            yield from _flatten(y)
    elif isinstance(x, dict):
        for y in x.values():
            yield from _flatten(y)
    else:
        yield x


def _getattr_path(obj, path: str):
    for atom in path.split("."):
        obj = getattr(obj, atom)
    return obj


# ----------------------------------------------------------------------------------------------
# one trace


def trace_graph(layer: nn.Module, policy: LeafPolicy, sig: inspect.Signature, d: int, dtype: torch.dtype,
                device: torch.device, cross: bool = True) -> fx.Graph:
    """The fx graph of ``layer``'s forward (real signature ``sig``, hidden width ``d``), traced on
    fake example inputs of ``dtype``/``device`` (``cross=False``: without memory states).  Not
    validated: that is ``trace.trace_layer``'s job.

    Raises :class:`TraceError` (or whatever fx raises) when the forward cannot be traced.
    """
    from torch._subclasses.fake_tensor import FakeTensorMode

    fake_mode = FakeTensorMode(allow_non_fake_inputs=True)
    real = example_inputs(sig, d, dtype, device, masks=False, rotary=rotary_width(layer), cross=cross)
    examples = {k: (fake_mode.from_tensor(v) if isinstance(v, torch.Tensor) else v) for k, v in real.items()}
    tracer = _LayerTracer(policy, fake_mode, examples)
    if not cross:  # memories are None while tracing: `if encoder_hidden_states is not None` folds away
        tracer.absent = {p.name for p in list(sig.parameters.values())[2:] if p.name.endswith("hidden_states")}

    # `self.training` of the layer and of every inlined module becomes a lazy get_attr proxy.
    leaves = leaf_paths(layer, policy)
    inlined = {name: mod for name, mod in layer.named_modules()
               if name not in leaves and not any(name.startswith(p + ".") for p in leaves)}
    saved = {name: mod.__dict__["training"] for name, mod in inlined.items()}
    try:
        for name, mod in inlined.items():
            mod.__dict__["training"] = _LazyTraining(tracer, name, saved[name])
        graph = tracer.trace(layer)
    finally:
        for name, mod in inlined.items():
            mod.__dict__["training"] = saved[name]

    # Record what points need (which calls return tuples) and drop the fake values (they pin the
    # fake mode in memory).
    for node in graph.nodes:
        val = node.meta.pop("val", None)
        node.meta["vls_tuple"] = len(val) if isinstance(val, (tuple, list)) else None
    _drop_dead_pure_nodes(graph)
    graph.lint()
    return graph


def _drop_dead_pure_nodes(graph: fx.Graph) -> None:
    """Remove unused getitem/get_attr nodes (e.g. the `_` of `hidden, _ = self.self_attn(...)`)."""
    for node in reversed(list(graph.nodes)):
        if node.users:
            continue
        if node.op == "get_attr" or (node.op == "call_function" and node.target is operator.getitem):
            graph.erase_node(node)
