"""Code generation: a layer graph becomes the Python source of a ``forward`` and then a function.

The tracer marks the layer's ``**kwargs`` with a placeholder dict entry (:data:`SPLAT`) so that fx
does not flatten it; :func:`generate_source` turns the marker back into a real ``**kwargs`` splat,
so the generated forward passes keyword arguments through to the leaf modules exactly as the
original does.  :func:`compile_forward` execs the source once; the source is registered with
linecache, so tracebacks and debuggers show the generated lines.
"""

from __future__ import annotations

import linecache
from typing import Any, Callable

from torch import fx

from vlsurgery.errors import CompileError

#: Key under which a ``**kwargs`` splat is recorded in a node's kwargs while tracing; code
#: generation turns ``<SPLAT> = kwargs`` back into ``**kwargs``.
SPLAT = "_vls_splat_kwargs_"


def generate_source(graph: fx.Graph) -> tuple[str, dict[str, Any]]:
    """Python source of ``forward(self, ...)`` for ``graph``, with ``**kwargs`` splats restored.

    Returns (source, globals needed to exec it).
    """
    for node in graph.nodes:
        node.type = None  # annotations such as Unpack[TransformersKwargs] only clutter the code
    code = graph.python_code(root_module="self")
    src = code.src
    for node in graph.find_nodes(op="placeholder"):
        if str(node.target).startswith("**"):
            src = src.replace(f"{SPLAT} = {node.name}", f"**{node.name}")
    if SPLAT in src:
        raise CompileError("internal: a **kwargs splat could not be restored in the generated code")
    src = "\n".join(line.rstrip() for line in src.strip("\n").splitlines()) + "\n"
    return src, dict(code.globals)


_COUNTER = [0]


def compile_forward(src: str, globals_: dict[str, Any], label: str) -> Callable:
    """Exec generated source into a function; the source is registered with linecache so that
    tracebacks and debuggers show the generated lines."""
    _COUNTER[0] += 1
    filename = f"<vlsurgery generated {label} #{_COUNTER[0]}>"
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    namespace = dict(globals_)
    exec(compile(src, filename, "exec"), namespace)  # noqa: S102 - our own generated code
    fn = namespace["forward"]
    fn.__qualname__ = f"{label}.forward"
    return fn
