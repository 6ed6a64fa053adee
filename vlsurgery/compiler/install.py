"""Installing a rewrite: by class change, never by swapping in a GraphModule.

Every change vlsurgery makes to an existing module's behaviour is one mechanism: the module object
stays where it is and only its ``__class__`` changes, to a runtime subclass of its original class
with a new ``forward`` (:func:`runtime_class`, :func:`swap_class`).  It is used for rewritten
layers (the forward is the code generated from the layer graph, :func:`install_graph`), projection
Linears (``h = linear(x)`` then the sites, :mod:`vlsurgery.compiler.rewrite`), the encoder and
decoder stacks of the prefix pass (:mod:`vlsurgery.compiler.prefix`), the decoder root of the
decoder-only prefix pass and its outer model's visual-keyword class
(:mod:`vlsurgery.compiler.causal_prefix`), and the ``save_pretrained`` layer of
:mod:`vlsurgery.checkpoint.hf` (on top of any other, ``runtime_class(..., over=True)``).  Hence (docs/design.md,
"Installing by class change"):

* parameter and buffer names, registered hooks and the module's position in the model are kept;
* ``isinstance(layer, BartEncoderLayer)`` still holds, so transformers' isinstance-keyed output
  capture (``output_hidden_states``) keeps working;
* ``GradientCheckpointingLayer.__init_subclass__`` wraps the new ``forward`` exactly as it wraps
  the original one, so gradient checkpointing keeps working;
* a generated ``forward`` is plain Python, exec'd once per distinct source: a call costs the
  same as the original forward (one wrapper, then straight-line code; no interpreter, no
  GraphModule indirection).  The original's ``@deprecate_kwarg`` shim is not reproduced.

A runtime class carries ``_vls_original_class`` (which :func:`is_rewritten` and
:func:`original_class` read) and ``_vls_source``, the readable source of its forward.  Classes are
cached per (original class, source) in the ``compiler.classes`` table of :mod:`vlsurgery.caches`,
so the six identically rewritten encoder layers of BART-base share one class.
:func:`generated_code` returns the source of each runtime class of a model (for ``--show-code``).
Pickling a whole rewritten model fails (its classes are made at run time): save a state dict and
re-apply the spec instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import fx, nn

from vlsurgery import caches
from vlsurgery.compiler.codegen import compile_forward, generate_source
from vlsurgery.errors import CompileError

#: The ModuleDict on a layer that holds its site modules (``...layers.3.pet.self_attn``); the
#: tracer never looks inside it.
PET_ATTR = "pet"

_CLASSES = caches.table("compiler.classes")  # (original class, source) -> runtime subclass


def is_rewritten(obj) -> bool:
    """Whether a module (or class) is one of vlsurgery's runtime classes."""
    cls = obj if isinstance(obj, type) else type(obj)
    return getattr(cls, "_vls_original_class", None) is not None


def original_class(obj) -> type:
    """The class a (possibly rewritten) module or class had before vlsurgery touched it."""
    cls = obj if isinstance(obj, type) else type(obj)
    return cls._vls_original_class if is_rewritten(cls) else cls


def runtime_class(original: type, source: str, forward: Callable | None = None,
                  globals_: dict | None = None, *, over: bool = False) -> type:
    """The cached runtime subclass of ``original`` whose ``forward`` is ``forward``, or, when that
    is None, ``source`` compiled with ``globals_`` (generated code).

    ``source`` is the readable source of the forward (``_vls_source``) and, with ``original``, the
    cache key: one source stands for one behaviour.  Name, qualname, module and docstring are the
    original's, so the class reads as the original everywhere (reprs, ``--show-code`` headers).
    ``over=True`` allows ``original`` to be a runtime class already: the new class is a layer on
    top of it (a model root's ``save_pretrained`` class over its visual-keyword class);
    :func:`original_class` still gives the class vlsurgery started from, and
    :func:`swap_class` takes layers off one at a time (:func:`previous_class`).
    """
    if is_rewritten(original) and not over:
        raise CompileError(f"{original.__name__} is already a runtime class of vlsurgery")
    key = (original, source)
    cls = _CLASSES.get(key)
    if cls is None:
        if forward is None:
            forward = compile_forward(source, globals_ or {}, original.__name__)
        cls = type(original.__name__, (original,), {
            "forward": forward,
            "__module__": original.__module__,
            "__qualname__": original.__qualname__,
            "__doc__": original.__doc__,
            "_vls_original_class": original_class(original),
            "_vls_source": source,
        })
        _CLASSES[key] = cls
    return cls


def previous_class(obj) -> type:
    """The class one class change down: the original for a runtime class, the class below it for a
    layer made with ``runtime_class(..., over=True)``."""
    cls = obj if isinstance(obj, type) else type(obj)
    return cls.__bases__[0] if is_rewritten(cls) else cls


def swap_class(module: nn.Module, cls: type) -> nn.Module:
    """Change ``module``'s class to ``cls``: a runtime subclass of its class, or back to the class
    one change down (:func:`previous_class`).  Anything else is refused (a class change must never
    lose a rewrite)."""
    current = type(module)
    into_runtime = is_rewritten(cls) and previous_class(cls) is current
    back_to_original = is_rewritten(current) and cls is previous_class(current)
    if not (into_runtime or back_to_original):
        raise CompileError(f"cannot change a {current.__qualname__} into a {cls.__qualname__}"
                           + ("; it is already rewritten" if is_rewritten(current) else ""))
    module.__class__ = cls
    return module


def install_graph(layer: nn.Module, graph: fx.Graph) -> type:
    """Give ``layer`` the runtime subclass generated from ``graph``; returns that class.

    Every ``call_module``/``get_attr`` target of the graph must exist on the layer (checked, so
    that a missing site module fails here and not at the first forward).
    """
    if is_rewritten(layer):
        raise CompileError(f"{type(layer).__name__} is already rewritten; restore_layer() it first")
    for node in graph.nodes:
        if node.op in ("call_module", "get_attr"):
            try:
                obj = layer
                for atom in node.target.split("."):
                    obj = getattr(obj, atom)
            except AttributeError:
                raise CompileError(f"the graph uses '{node.target}', which {type(layer).__name__} does not have")
    graph.lint()
    source, globals_ = generate_source(graph)
    cls = runtime_class(type(layer), source, globals_=globals_)
    swap_class(layer, cls)
    return cls


def restore_layer(layer: nn.Module) -> nn.Module:
    """Undo a rewrite: original classes for the layer and its projection Linears, no ``pet``."""
    for mod in layer.modules():
        if is_rewritten(mod):
            swap_class(mod, original_class(mod))
            mod.__dict__.pop("_vls_sites", None)
    if PET_ATTR in layer._modules:
        del layer._modules[PET_ATTR]
    return layer


@dataclass(frozen=True)
class GeneratedCode:
    """The generated source of one rewritten class and the modules that use it."""

    class_name: str
    paths: tuple[str, ...]
    source: str

    def render(self) -> str:
        head = f"# {self.class_name}: {', '.join(self.paths)}"
        return f"{head}\n{self.source}"


def generated_source(obj) -> str:
    """The generated forward of a rewritten module (or class)."""
    cls = obj if isinstance(obj, type) else type(obj)
    if not is_rewritten(cls):
        raise CompileError(f"{cls.__name__} is not rewritten by vlsurgery")
    return cls._vls_source


def generated_code(model: nn.Module) -> list[GeneratedCode]:
    """One entry per runtime class in ``model`` (layers, projection Linears, stacks), in module order."""
    groups: dict[type, list[str]] = {}
    for path, mod in model.named_modules():
        if is_rewritten(mod):
            groups.setdefault(type(mod), []).append(path or "<root>")
    return [GeneratedCode(cls.__name__, tuple(paths), cls._vls_source) for cls, paths in groups.items()]


def format_generated_code(model: nn.Module) -> str:
    """All generated code of ``model`` as one text (what ``--show-code`` prints)."""
    return "\n\n".join(item.render() for item in generated_code(model))
