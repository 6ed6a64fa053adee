"""``compile(spec, model)``: the whole pipeline, from a spec to a trainable Hugging Face model.

    spec ──plan──► sites ──build──► site modules ──rewrite──► layers (class change)
                                                   prefix ──► encoder/decoder (class change)
                                                   freeze ──► requires_grad flags

1. ``plan``: the spec is resolved against the model's own config (``vlsurgery.profiles``), so a
   design written for ``bart-base`` compiles onto any BART-family model, and its counts are the
   ones ``vlsurgery count`` predicts.
2. ``build``: one module per site from the method registry, in the dtype and on the device of
   the layer it goes into; Compacter's shared rules live once, in ``model.vls_shared``.
3. ``rewrite``: every layer with sublayer sites is traced (once per class) and its graph gets the
   site modules at their X/H points; projection sites rewrite their nn.Linear.
4. ``prefix``: the visual projector and prompt tokens are prepended at the encoder input.
5. ``freeze``: every base parameter is frozen except those the spec's ``train`` names; every
   added module trains (the projector only when ``train projector`` says so).

All of it runs inside one transaction: on any error the model is exactly as it was.
"""

from __future__ import annotations

import contextlib
import functools
import re

import torch
from torch import nn

from vlsurgery.compiler.install import is_rewritten
from vlsurgery.compiler.prefix import PrefixTokens, install_prefix
from vlsurgery.compiler.rewrite import Insertion, LayerEdit, Projection, rewrite_model
from vlsurgery.compiler.trace import LeafPolicy
from vlsurgery.compiler.transaction import transaction
from vlsurgery.errors import CompileError, UsageError
from vlsurgery.methods.registry import build_projector, get
from vlsurgery.profiles.profile import leaf_regex

SHARED_ATTR = "vls_shared"


@functools.lru_cache(maxsize=None)
def leaf_policy(profile_leaves: tuple[str, ...]) -> LeafPolicy:
    """One LeafPolicy object per set of leaf patterns, so traces are shared across compile calls."""
    regexes = [leaf_regex(p) for p in profile_leaves]

    def is_leaf(qualname: str, module: nn.Module) -> bool:
        return any(rx.fullmatch(qualname) for rx in regexes)

    return LeafPolicy(predicate=is_leaf)


def site_name(path: str) -> str:
    """The module name of a site under its layer's ``pet``: ``decoder[0].cross_attn.v`` -> ``cross_attn_v``."""
    local = re.sub(r"^[^.]+\[\d+\]\.", "", path)
    return re.sub(r"\W+", "_", local).strip("_")


def _layer_dtype_device(layer: nn.Module):
    p = next(layer.parameters(), None)
    return (p.dtype, p.device) if p is not None else (torch.float32, torch.device("cpu"))


def compile(spec, model: nn.Module, *, seed: int | None = None) -> nn.Module:
    """Apply ``spec`` to ``model`` in place and return it (see the module docstring).

    ``spec``: a Spec, a path or spec text.  ``seed``: if given, the added modules are initialised
    from it (the global RNG is left as it was).  Raises SpecError/ResolutionError when the spec does
    not fit the model, CompileError when a layer cannot be rewritten; the model is then unchanged.
    """
    from vlsurgery.planning import plan as make_plan

    if not isinstance(model, nn.Module):
        raise UsageError(f"compile() takes a model (nn.Module), got {type(model).__name__}")
    if any(is_rewritten(m) for m in model.modules()):
        raise CompileError(f"this {type(model).__name__} has already been compiled by vlsurgery: "
                           "compile a fresh model (re-apply the spec, then load a state dict)")
    plan = make_plan(spec, model)
    rng = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
    with rng, transaction(model):
        if seed is not None:
            torch.manual_seed(seed)
        base = {name for name, _ in model.named_parameters()}
        _rewrite(model, plan)
        _prefix(model, plan)
        _freeze(model, plan, base)
    return model


def _shared_store(model: nn.Module, plan) -> nn.ParameterDict | None:
    if not plan.shared:
        return None
    store = nn.ParameterDict()
    model.add_module(SHARED_ATTR, store)
    return store


def _build(site, layer: nn.Module, store, model: nn.Module) -> nn.Module:
    dtype, device = _layer_dtype_device(layer)
    context = {"dtype": dtype, "device": device}
    if site.shared:
        context["shared_params"] = store
    if site.method == "prompt":
        context["token_embedding"] = model.get_input_embeddings()
    return get(site.method).build(site.params, site.dims, **context)


def _rewrite(model: nn.Module, plan) -> None:
    """Pass 'rewrite': site modules into the layer graphs and after the projections."""
    store = _shared_store(model, plan)
    edits: dict[str, LayerEdit] = {}
    for site in plan.sites:
        if site.kind == "input" or site.method == "none":
            continue
        layer = model.get_submodule(site.layer_module)
        module = _build(site, layer, store, model)
        name = site_name(site.path)
        edit = edits.setdefault(site.layer_module, LayerEdit((), ()))
        if site.kind == "sublayer":
            # Only the per-example gate averages over tokens, so only it needs the padding mask.
            wants_mask = getattr(site.params, "granularity", None) == "scalar"
            item = Insertion(name, site.x_point, site.h_point, module, mask=wants_mask)
            edit = LayerEdit(edit.insertions + (item,), edit.projections)
        else:
            edit = LayerEdit(edit.insertions, edit.projections + (Projection(site.linear, name, module),))
        edits[site.layer_module] = edit
    if edits:
        rewrite_model(model, edits, leaf_policy(plan.profile.leaves))


def _prefix(model: nn.Module, plan) -> None:
    """Pass 'prefix': the visual projector and prompt tokens at the encoder input."""
    prompt = None
    for site in plan.sites:
        if site.kind != "input" or site.method == "none":
            continue
        if site.stack != "encoder":
            raise CompileError(f"site {site.path}: tokens can only be prepended to the encoder's input")
        prompt = _build(site, model.get_input_embeddings(), None, model)
    projector = None
    if plan.projector is not None:
        embedding = model.get_input_embeddings()
        projector = build_projector(plan.projector, plan.profile.d_model, embedding, norm=plan.profile.norm.kind)
        projector.to(embedding.weight.device, embedding.weight.dtype)
    if projector is not None or prompt is not None:
        install_prefix(model, PrefixTokens(projector, prompt))


def _freeze(model: nn.Module, plan, base: set[str]) -> None:
    """Pass 'freeze': base parameters train only when ``train`` names them; added ones always
    (the projector's only with ``train projector``)."""
    trainable = set(plan.train)
    unknown = trainable - base
    if unknown:
        raise CompileError(f"the plan trains parameters the model does not have: {sorted(unknown)[:5]}")
    for name, param in model.named_parameters():
        if name in base:
            param.requires_grad_(name in trainable)
        elif ".vls_prefix.projector." in f".{name}":
            param.requires_grad_(plan.train_projector)
        else:
            param.requires_grad_(True)
