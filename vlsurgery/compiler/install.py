"""Installing a rewritten graph: by class change, never by swapping in a GraphModule.

The layer object stays where it is; only its ``__class__`` changes, to a runtime subclass of its
original class whose ``forward`` is the code generated from the graph.  Hence:

* parameter and buffer names, registered hooks and the layer's position in the model are kept;
* ``isinstance(layer, BartEncoderLayer)`` still holds, so transformers' isinstance-keyed output
  capture (``output_hidden_states``) keeps working;
* ``GradientCheckpointingLayer.__init_subclass__`` wraps the new ``forward`` exactly as it wraps
  the original one, so gradient checkpointing keeps working;
* the generated ``forward`` is plain Python, exec'd once per distinct source: a call costs the
  same as the original forward (one wrapper, then straight-line code; no interpreter, no
  GraphModule indirection).  The original's ``@deprecate_kwarg`` shim is not reproduced.

Subclasses are cached per (original class, generated source), so the 12 identically rewritten
encoder layers of BART-base share one class.  :func:`generated_code` returns the readable source
of each rewritten class (for ``--show-code``).  Pickling a whole rewritten model fails (its
classes are made at run time): save a state dict and re-apply the spec instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import fx, nn

from vlsurgery.compiler.codegen import compile_forward, generate_source
from vlsurgery.errors import CompileError

_LAYER_CLASSES: dict[tuple[type, str], type] = {}


def original_class(obj) -> type:
    """The class a (possibly rewritten) module or class had before vlsurgery touched it."""
    cls = obj if isinstance(obj, type) else type(obj)
    return getattr(cls, "_vls_original_class", None) or cls


def is_rewritten(module: nn.Module) -> bool:
    return getattr(type(module), "_vls_original_class", None) is not None


def layer_class(original: type, source: str, globals_: dict) -> type:
    """The cached runtime subclass of ``original`` whose forward is ``source``."""
    key = (original, source)
    cls = _LAYER_CLASSES.get(key)
    if cls is None:
        forward = compile_forward(source, globals_, original.__name__)
        cls = type(original.__name__, (original,), {
            "forward": forward,
            "__module__": original.__module__,
            "__qualname__": original.__qualname__,
            "__doc__": original.__doc__,
            "_vls_original_class": original,
            "_vls_source": source,
        })
        _LAYER_CLASSES[key] = cls
    return cls


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
    cls = layer_class(type(layer), source, globals_)
    layer.__class__ = cls
    return cls


def restore_layer(layer: nn.Module) -> nn.Module:
    """Undo a rewrite: original classes for the layer and its projection Linears, no ``pet``."""
    from vlsurgery.compiler.rewrite import PET_ATTR

    for mod in layer.modules():
        if is_rewritten(mod):
            mod.__class__ = original_class(mod)
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
    source = getattr(cls, "_vls_source", None)
    if source is None:
        raise CompileError(f"{cls.__name__} is not rewritten by vlsurgery")
    return source


def generated_code(model: nn.Module) -> list[GeneratedCode]:
    """One entry per rewritten class in ``model`` (layers and projection Linears), in module order."""
    groups: dict[type, list[str]] = {}
    for path, mod in model.named_modules():
        if is_rewritten(mod):
            groups.setdefault(type(mod), []).append(path or "<root>")
    return [GeneratedCode(cls.__name__, tuple(paths), cls._vls_source) for cls, paths in groups.items()]


def format_generated_code(model: nn.Module) -> str:
    """All generated code of ``model`` as one text (what ``--show-code`` prints)."""
    return "\n\n".join(item.render() for item in generated_code(model))
