"""Rewrite passes: put site modules into a traced layer graph, and onto projection Linears.

Two primitives, and :func:`rewrite_layer`, which runs them on one layer and installs the result:

* :func:`insert_site` (graph pass): for a site (X point, H point) add a ``call_module`` node
  ``pet.<name>(X, H, mask=M)`` right after H and make every later use of H read the new node.
  The module lives on the layer in a ``ModuleDict`` called ``pet``, so its parameters are named
  ``...layers.3.pet.self_attn.*``.  BART's feed-forward region (X = ``fc1:in``, H = ``fc2:out``)
  is an ordinary case.  Several sites on one H chain in insertion order.
* :func:`rewrite_projection` (module pass): a site on an ``nn.Linear`` (or transformers'
  ``Conv1D``, GPT-2) below the layer (e.g. ``encoder_attn.v_proj``, ``layer.1.EncDecAttention.v``)
  gives the Linear object a runtime subclass (:func:`~vlsurgery.compiler.install.runtime_class`)
  whose forward is ``h = linear(x); h = site(x, h)`` for each of its sites.  A site that owns a
  column slice of a fused projection (GPT-2's ``q`` in ``c_attn``) is applied to those columns
  only (:func:`~vlsurgery.methods.projections.apply_sites`); the Linear keeps its sites as one
  tuple of ``(module, columns)`` pairs, ``_vls_sites``.  The Linear's parameters keep their
  names (``...v_proj.weight``); the site module is registered under the layer's ``pet`` as well
  and only *referenced* from the Linear (so it is not counted twice).

Padding mask rule (the ``mask`` argument of site modules, used by the scalar gate; docs/design.md,
"The padding mask rule"): in a layer whose forward has an ``attention_mask`` parameter, one graph
node computes :func:`padding_mask` (attention_mask, hidden_states) once per call and every
sublayer site that asks for it (``Insertion.mask``, which ``compile`` takes from the method's
``needs_mask``) receives it: a (B, N) bool mask of real tokens, read from the *last query row* of
the layer's own (self-attention) mask, which sees every key the layer's tokens may attend to,
causal or not; the last N keys are the current tokens (a decoder with a cache has more keys).
4-D/3-D boolean masks: True = attend; 4-D/3-D float masks are additive: 0 = attend; 2-D masks:
non-zero = real.  When the mask is None (e.g. SDPA without padding) or not a tensor (flex
attention's BlockMask), ``mask`` is None.  Projection sites never get a mask.

Every pass lints the graph after it runs and failures name the pass and the site.
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
from torch import fx, nn

from vlsurgery.compiler.install import PET_ATTR, install_graph, is_rewritten, runtime_class, swap_class
from vlsurgery.compiler.points import parse_point, resolve_point
from vlsurgery.compiler.trace import LeafPolicyLike, trace_layer
from vlsurgery.compiler.transaction import transaction
from vlsurgery.errors import CompileError, nearest
from vlsurgery.methods.projections import apply_sites, is_projection, projection_dims


@dataclass(frozen=True)
class Insertion:
    """A sublayer site: ``module(X, H, mask)`` replaces H.  ``mask=False`` passes no mask."""

    name: str
    x_point: str
    h_point: str
    module: nn.Module
    mask: bool = True


@dataclass(frozen=True)
class Projection:
    """A projection site: ``module(x, linear(x))`` replaces the Linear's output (``columns``:
    only its output columns [start, stop), the others kept)."""

    linear: str
    name: str
    module: nn.Module
    columns: tuple[int, int] | None = None


def padding_mask(attention_mask, hidden_states: torch.Tensor):
    """The (B, N) bool mask of real tokens, derived from a layer's attention mask (or None).

    See the module docstring for the rule.  Called from generated layer code.
    """
    if not isinstance(attention_mask, torch.Tensor):
        return None
    m = attention_mask
    if m.dim() == 4:
        m = m[:, 0, -1, :]
    elif m.dim() == 3:
        m = m[:, -1, :]
    elif m.dim() != 2:
        return None
    m = m[:, -hidden_states.shape[1]:]
    if m.dtype == torch.bool:
        return m
    if attention_mask.dim() == 2 or not m.is_floating_point():
        return m != 0
    return m == 0


# ----------------------------------------------------------------------------------------------
# the graph pass


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise CompileError(f"{what} name {name!r} is not a valid attribute name "
                           f"(use letters, digits and '_', e.g. {str(name).replace('.', '_')!r})")


def mask_node(graph: fx.Graph) -> fx.Node | None:
    """The graph's padding-mask node, created on first use; None when the layer has no
    ``attention_mask`` parameter."""
    for node in graph.nodes:
        if node.meta.get("vls_mask"):
            return node
    placeholders = list(graph.find_nodes(op="placeholder"))
    attn = next((p for p in placeholders if p.target == "attention_mask"), None)
    if attn is None:
        return None
    with graph.inserting_after(placeholders[-1]):
        node = graph.call_function(padding_mask, (attn, placeholders[0]))
    node.meta["vls_mask"] = True
    return node


def insert_site(graph: fx.Graph, name: str, x_point: str, h_point: str, *, mask: bool = True) -> fx.Node:
    """Graph pass: insert ``pet.<name>(X, H[, mask=M])`` after H; later uses of H read it.

    Returns the new node.  The module itself must be registered as ``<layer>.pet.<name>`` by the
    caller (``rewrite_layer`` does).  Raises CompileError when a point does not resolve or X is
    computed after H.
    """
    _check_name(name, "site")
    parse_point(x_point), parse_point(h_point)
    x = resolve_point(graph, x_point)
    h = resolve_point(graph, h_point)
    order = {n: i for i, n in enumerate(graph.nodes)}
    if order[x] > order[h]:
        raise CompileError(f"X point {x_point!r} is computed after H point {h_point!r}; "
                           f"a site module must read X when H is ready")
    kwargs = {}
    if mask:
        m = mask_node(graph)
        if m is not None:
            kwargs["mask"] = m
    with graph.inserting_after(h):
        node = graph.call_module(f"{PET_ATTR}.{name}", (x, h), kwargs)
    node.meta["vls_site"] = name
    h.replace_all_uses_with(node, delete_user_cb=lambda user: user is not node)
    h.meta["vls_replaced_by"] = node
    return node


# ----------------------------------------------------------------------------------------------
# the projection pass

def projection_class(cls: type) -> type:
    """The runtime subclass of a Linear class that applies its sites after the projection."""
    base_forward = cls.forward

    def forward(self, input):
        return apply_sites(self._vls_sites, input, base_forward(self, input))

    forward.__qualname__ = f"{cls.__qualname__}.forward"
    source = (f"def forward(self, input):\n"
              f"    h = {cls.__qualname__}.forward(self, input)\n"
              f"    # the layer's pet modules, in order, as (module, columns) pairs; a site with columns\n"
              f"    # changes only those of h (each slice cut once, one torch.cat for all of them)\n"
              f"    return apply_sites(self._vls_sites, input, h)\n")
    return runtime_class(cls, source, forward)


def _linear_paths(layer: nn.Module) -> list[str]:
    return [n for n, m in layer.named_modules() if is_projection(m) and n]


def find_linear(layer: nn.Module, path: str) -> nn.Linear:
    """The nn.Linear (or Conv1D) at ``path`` below ``layer``, or a CompileError listing those there are."""
    try:
        mod = layer.get_submodule(path)
    except AttributeError:
        mod = None
    if not is_projection(mod):
        paths = _linear_paths(layer)
        guess = nearest(path, paths)
        what = "no module" if mod is None else f"a {type(mod).__name__}, not an nn.Linear or Conv1D,"
        raise CompileError(f"projection {path!r}: {what} at that path in {type(layer).__name__}"
                           + (f"; did you mean '{guess}'?" if guess else "")
                           + f"\n  linear layers: {', '.join(paths) or '(none)'}")
    return mod


def attach_projection(linear: nn.Linear, module: nn.Module, columns: tuple[int, int] | None = None) -> None:
    """Module pass on one Linear: apply ``module(x, h)`` after it (sites chain in order); with
    ``columns`` (start, stop), to those output columns only."""
    if columns is not None:
        d_out = projection_dims(linear)[1]
        start, stop = columns
        if not 0 <= start < stop <= d_out:
            raise CompileError(f"columns [{start}:{stop}] are not within the {d_out} output columns of {linear!r}")
        columns = (start, stop)
    if not is_rewritten(linear):
        swap_class(linear, projection_class(type(linear)))
    sites = linear.__dict__.get("_vls_sites", ())
    # A plain tuple of (module, columns) in __dict__: referenced, not registered (the layer's `pet`
    # owns the module).
    object.__setattr__(linear, "_vls_sites", sites + ((module, columns),))


def rewrite_projection(layer: nn.Module, linear_path: str, name: str, module: nn.Module,
                       columns: tuple[int, int] | None = None) -> nn.Linear:
    """Register ``module`` as ``layer.pet.<name>`` and apply it after the Linear at ``linear_path``
    (to its output ``columns`` only, when given)."""
    _check_name(name, "site")
    linear = find_linear(layer, linear_path)
    _register(layer, name, module)
    attach_projection(linear, module, columns)
    return linear


# ----------------------------------------------------------------------------------------------
# one layer, end to end


def _register(layer: nn.Module, name: str, module: nn.Module) -> None:
    pet = layer._modules.get(PET_ATTR)
    if pet is None:
        if hasattr(layer, PET_ATTR):
            raise CompileError(f"{type(layer).__name__} already has an attribute '{PET_ATTR}'")
        pet = nn.ModuleDict()
        layer.add_module(PET_ATTR, pet)
    if name in pet:
        raise CompileError(f"a site named '{name}' already exists on this layer")
    try:
        pet[name] = module
    except (KeyError, TypeError) as exc:
        raise CompileError(f"cannot register site '{name}': {exc}") from exc


def _as(cls, items: Iterable) -> list:
    """Items given as ``cls`` objects or as plain tuples of its fields, all as ``cls`` objects."""
    return [item if isinstance(item, cls) else cls(*item) for item in items]


def rewrite_layer(layer: nn.Module, leaf_policy: LeafPolicyLike,
                  insertions: Sequence[Insertion | tuple] = (),
                  projections: Sequence[Projection | tuple] = (), *, label: str | None = None,
                  memories: bool = True) -> nn.Module:
    """Rewrite one layer in place and return it.

    ``insertions``: ``Insertion(name, x_point, h_point, module[, mask])`` or plain tuples;
    ``projections``: ``Projection(linear_path, name, module)`` or tuples.  The layer keeps its
    identity; with insertions its class becomes a cached runtime subclass whose forward is the
    generated code (see :mod:`vlsurgery.compiler.install`).  On failure the layer is left exactly
    as it was and a CompileError names the pass, the site and the layer (``label``, e.g. its path).
    ``memories``: whether the layer reads memory states (its stack has cross-attention; see
    :func:`~vlsurgery.compiler.trace.trace_layer`).
    """
    where = label or type(layer).__name__
    insertions = _as(Insertion, insertions)
    projections = _as(Projection, projections)
    names = [i.name for i in insertions] + [p.name for p in projections]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise CompileError(f"{where}: site names used twice: {', '.join(duplicates)}")
    if is_rewritten(layer) and insertions:
        raise CompileError(f"{where}: this layer is already rewritten; restore_layer() it first")

    graph = None
    if insertions:
        traced = trace_layer(layer, leaf_policy, memories=memories)
        graph = traced.copy_graph()
        for site in insertions:
            try:
                insert_site(graph, site.name, site.x_point, site.h_point, mask=site.mask)
                graph.lint()
            except Exception as exc:
                raise CompileError(f"{where}: pass 'insert_site' failed at site '{site.name}' "
                                   f"({site.x_point} -> {site.h_point}): {_message(exc)}") from exc

    with transaction(layer):
        for site in insertions:
            _register(layer, site.name, site.module)
        for proj in projections:
            try:
                rewrite_projection(layer, proj.linear, proj.name, proj.module, proj.columns)
            except Exception as exc:
                raise CompileError(f"{where}: pass 'rewrite_projection' failed at site '{proj.name}' "
                                   f"({proj.linear}): {_message(exc)}") from exc
        if graph is not None:
            try:
                install_graph(layer, graph)
            except Exception as exc:
                raise CompileError(f"{where}: pass 'install' failed: {_message(exc)}") from exc
    return layer


def _message(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, CompileError) else f"{type(exc).__name__}: {exc}"


# ----------------------------------------------------------------------------------------------
# a whole model


@dataclass(frozen=True)
class LayerEdit:
    """The sites of one layer: what :func:`rewrite_model` does to it."""

    insertions: tuple = ()
    projections: tuple = ()
    #: the layer reads memory states (its stack has cross-attention): False for GPT-2's blocks
    memories: bool = True


def rewrite_model(model: nn.Module, edits, leaf_policy: LeafPolicyLike) -> nn.Module:
    """Rewrite several layers of ``model`` (``{layer path: LayerEdit or (insertions, projections)}``)
    as one transaction: either every layer is rewritten, or the model is left exactly as it was."""
    with transaction(model):
        for path, edit in dict(edits).items():
            if not isinstance(edit, LayerEdit):
                edit = LayerEdit(*edit)
            try:
                layer = model.get_submodule(path)
            except AttributeError:
                raise CompileError(f"no module '{path}' in {type(model).__name__}") from None
            rewrite_layer(layer, leaf_policy, edit.insertions, edit.projections, label=path, memories=edit.memories)
    return model
