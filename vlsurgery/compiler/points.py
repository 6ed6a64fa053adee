"""Dataflow points: names for values inside one traced layer graph.

A point is ``"<module>:in"`` or ``"<module>:out"``, ``<module>`` being the target of a
``call_module`` node of the layer graph (a leaf, relative to the layer):

* ``"<module>:in"``: the hidden-states argument of that call, i.e. its first positional argument,
  else its ``hidden_states``/``input`` keyword, e.g. ``fc1:in``, ``layer.0.layer_norm:in`` (T5's
  un-normalised sublayer input);
* ``"<module>:out"``: the call's output; when the leaf returns a tuple, element 0 (the
  ``getitem(..., 0)`` node), e.g. ``self_attn:out``, ``layer.0.SelfAttention:out``.

Points resolve against the *current* graph: after a site has been inserted at ``h`` (see
:mod:`vlsurgery.compiler.rewrite`), ``"<module>:out"`` means the value flowing out of that point
now, i.e. the last site module inserted there, so that sites stacked on one point chain in
insertion order.  A module called more than once is ambiguous and rejected.

>>> resolve_point(graph, "fc2:out")          # doctest: +SKIP
fc2
"""

from __future__ import annotations

import operator

from torch import fx

from vlsurgery.errors import CompileError, nearest

_INPUT_KEYWORDS = ("hidden_states", "input", "x")


def parse_point(point: str) -> tuple[str, str]:
    """Split ``"<module>:in|out"`` into (module, side); raises CompileError when malformed."""
    module, sep, side = str(point).rpartition(":")
    if not sep or not module or side not in ("in", "out"):
        raise CompileError(f"malformed dataflow point {point!r}: expected '<module>:in' or '<module>:out'")
    return module, side


def call_module_targets(graph: fx.Graph) -> list[str]:
    """Targets of the graph's ``call_module`` nodes, in graph order, without the sites vlsurgery added."""
    seen: list[str] = []
    for node in graph.nodes:
        if node.op == "call_module" and not node.meta.get("vls_site") and node.target not in seen:
            seen.append(node.target)
    return seen


def _not_found(graph: fx.Graph, module: str, point: str) -> CompileError:
    targets = call_module_targets(graph)
    guess = nearest(module, targets)
    hint = f"; did you mean '{guess}'?" if guess else ""
    return CompileError(f"dataflow point {point!r}: no call of module '{module}' in the layer graph{hint}\n"
                        f"  modules called: {', '.join(targets) or '(none)'}")


def call_node(graph: fx.Graph, module: str, point: str | None = None) -> fx.Node:
    """The single ``call_module`` node of ``module``."""
    nodes = [n for n in graph.nodes if n.op == "call_module" and n.target == module]
    if not nodes:
        raise _not_found(graph, module, point or module)
    if len(nodes) > 1:
        raise CompileError(f"dataflow point {point or module!r}: module '{module}' is called "
                           f"{len(nodes)} times in the layer graph; the point is ambiguous")
    return nodes[0]


def _current(node: fx.Node) -> fx.Node:
    """Follow the chain of sites inserted at ``node`` to the value that flows on now."""
    while "vls_replaced_by" in node.meta:
        node = node.meta["vls_replaced_by"]
    return node


def resolve_point(graph: fx.Graph, point: str) -> fx.Node:
    """The fx node that carries the value of ``point`` (see the module docstring)."""
    module, side = parse_point(point)
    call = call_node(graph, module, point)
    if side == "in":
        if call.args:
            value = call.args[0]
        else:
            value = next((call.kwargs[k] for k in _INPUT_KEYWORDS if k in call.kwargs), None)
        if not isinstance(value, fx.Node):
            raise CompileError(f"dataflow point {point!r}: the call of '{module}' has no hidden-states "
                               f"argument (positional, or keyword {'/'.join(_INPUT_KEYWORDS)})")
        return value
    if call.meta.get("vls_tuple") is not None:
        outs = [u for u in call.users if u.op == "call_function" and u.target is operator.getitem
                and u.args[1] == 0]
        if not outs:
            raise CompileError(f"dataflow point {point!r}: '{module}' returns a tuple whose element 0 "
                               f"is never used in the layer")
        return _current(outs[0])
    return _current(call)


def describe_points(graph: fx.Graph) -> list[str]:
    """Every point of the graph, for error messages and ``--show-points`` style listings."""
    return [f"{t}:{side}" for t in call_module_targets(graph) for side in ("in", "out")]
