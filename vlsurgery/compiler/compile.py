"""``compile(spec, model)``: the whole pipeline, from a spec to a trainable Hugging Face model.

    spec ──plan──► sites ──build──► site modules ──rewrite──► layers (class change)
                                                   prefix ──► encoder/decoder (class change)
                                                   freeze ──► requires_grad flags

1. ``plan``: the spec is resolved against the model's own config (``vlsurgery.profiles``), so a
   design written for ``bart-base`` compiles onto any BART-family model, and its counts are the
   ones ``vlsurgery count`` predicts.
2. ``build``: one module per site from the method registry, in the dtype and on the device of
   the layer it goes into, given the context its entry declares for the site
   (``entry.context_for(hp)``: the token embedding, the model's store of shared tensors,
   ``model.vls_shared``, and ``backbone_init``, the backbone's own initialiser read from the
   model's config by :func:`vlsurgery.methods.initializers.backbone_init`: ``init_std`` on BART,
   ``initializer_factor / sqrt(fan_in)`` on T5, for ``init_<part>=backbone``); whether a site gets
   the padding mask is the entry's ``needs_mask``.  The compiler never names a method: what a method needs is
   declared in :mod:`vlsurgery.methods.registry`.
3. ``rewrite``: every layer with sublayer sites is traced (once per class) and its graph gets the
   site modules at their X/H points; projection sites rewrite their nn.Linear.
4. ``prefix``: the visual projector's tokens and those of the input sites (prompts) are
   prepended at the input of the stack that takes them: the encoder of an encoder-decoder
   (:mod:`~vlsurgery.compiler.prefix`), the decoder of a decoder-only model
   (:mod:`~vlsurgery.compiler.causal_prefix`); a design without a projector makes that stack
   refuse visual inputs instead.
5. ``freeze``: every base parameter is frozen except those the spec's ``train`` names; the
   parameters of an added module train as its entry's ``trains`` says (all of them, for every
   method today); the projector's only when ``train projector`` says so.  Added modules are
   recognised by identity (the objects built here), never by their parameter names.

All of it runs inside one transaction: on any error the model is exactly as it was.  Before it,
the plan's counts are checked against the free memory of the model's devices
(:mod:`~vlsurgery.compiler.budget`); after it, the model is marked with its design
(``model.vls_design``, :mod:`~vlsurgery.compiler.design`), so a second compile is refused.
"""

from __future__ import annotations

import contextlib
import re
from typing import Callable

import torch
from torch import nn

from vlsurgery import caches
from vlsurgery.compiler.budget import allocation_guard, check_memory
from vlsurgery.compiler.causal_prefix import decoder_root, install_causal_prefix
from vlsurgery.compiler.design import mark, refuse_compiled
from vlsurgery.compiler.placement import dtype_device
from vlsurgery.compiler.prefix import PrefixTokens, install_prefix
from vlsurgery.compiler.rewrite import Insertion, LayerEdit, Projection, rewrite_model
from vlsurgery.compiler.trace import LeafPolicy
from vlsurgery.compiler.transaction import transaction
from vlsurgery.errors import CompileError, UsageError
from vlsurgery.methods.initializers import backbone_init
from vlsurgery.methods.registry import build_projector, get
from vlsurgery.profiles.profile import leaf_regex

SHARED_ATTR = "vls_shared"

#: A module vlsurgery added, with the rule for its parameters: (module, trains(name) -> bool).
Added = tuple[nn.Module, Callable[[str], bool]]


@caches.memoize("compiler.leaf_policy")
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


def compile(spec, model: nn.Module, *, seed: int | None = None) -> nn.Module:
    """Apply ``spec`` to ``model`` in place and return it (see the module docstring).

    ``spec``: a Spec, a path or spec text.  ``seed``: if given, the added modules are initialised
    from it (the global RNG is left as it was).  Raises SpecError/ResolutionError when the spec does
    not fit the model, CompileError when a layer cannot be rewritten, when the added modules cannot
    fit the free memory of the model's devices, or when the model was compiled before; the model is
    then unchanged.  A compiled model carries its design as ``model.vls_design``.
    """
    from vlsurgery.planning import plan as make_plan

    if not isinstance(model, nn.Module):
        raise UsageError(f"compile() takes a model (nn.Module), got {type(model).__name__}")
    refuse_compiled(model)
    plan = make_plan(spec, model)
    check_memory(plan, model)
    rng = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
    with rng, transaction(model):
        if seed is not None:
            torch.manual_seed(seed)
        base = {name for name, _ in model.named_parameters()}
        store = _shared_store(model, plan)
        # What a method may declare it needs; looked up only when one does (a backbone without
        # visual or prompt tokens need not have get_input_embeddings).
        offered = {"token_embedding": lambda: model.get_input_embeddings(), "shared_params": lambda: store,
                   "backbone_init": lambda: backbone_init(getattr(model, "config", None))}
        added = _rewrite(model, plan, offered) + _prefix(model, plan, offered)
        _freeze(model, plan, base, added)
        mark(model, plan.spec)
    return model


def _shared_store(model: nn.Module, plan) -> nn.ParameterDict | None:
    if not plan.shared:
        return None
    store = nn.ParameterDict()
    model.add_module(SHARED_ATTR, store)
    return store


def _build(entry, site, into: nn.Module, offered: dict[str, Callable]) -> nn.Module:
    """The module of ``site``, in the dtype and on the device of ``into``, given the context its
    method declares for it (``entry.context_for``) from what the compiler ``offered``."""
    dtype, device = dtype_device(into)
    context = {key: offered[key]() for key in entry.context_for(site.params)}
    with allocation_guard(f"the module of site {site.path} ({site.method})", site.trainable):
        return entry.build(site.params, site.dims, dtype=dtype, device=device, **context)


def _rewrite(model: nn.Module, plan, offered: dict[str, Callable]) -> list[Added]:
    """Pass 'rewrite': site modules into the layer graphs and after the projections."""
    added: list[Added] = []
    edits: dict[str, LayerEdit] = {}
    for site in plan.sites:
        if site.kind == "input":
            continue
        entry = get(site.method)
        layer = model.get_submodule(site.layer_module)
        module = _build(entry, site, layer, offered)
        added.append((module, entry.trains))
        name = site_name(site.path)
        # Only a stack with cross-attention reads the encoder's states: a fact of the profile, so
        # GPT-2's blocks (which refuse memories) are traced without them and BART's never are.
        memories = plan.profile.stack(site.stack).sublayer("cross_attn") is not None
        edit = edits.setdefault(site.layer_module, LayerEdit((), (), memories))
        if site.kind == "sublayer":
            item = Insertion(name, site.x_point, site.h_point, module, mask=entry.needs_mask(site.params))
            edit = LayerEdit(edit.insertions + (item,), edit.projections, memories)
        else:
            item = Projection(site.linear, name, module, site.columns)
            edit = LayerEdit(edit.insertions, edit.projections + (item,), memories)
        edits[site.layer_module] = edit
    if edits:
        rewrite_model(model, edits, leaf_policy(plan.profile.leaves))
    return added


def _prefix(model: nn.Module, plan, offered: dict[str, Callable]) -> list[Added]:
    """Pass 'prefix': the visual projector and the input sites' tokens at the encoder input."""
    added: list[Added] = []
    tokens = None
    for site in plan.sites:
        if site.kind != "input":
            continue
        if site.stack not in plan.profile.roles.inputs:
            raise CompileError(f"site {site.path}: tokens can only be prepended to the "
                               f"{' or '.join(plan.profile.roles.inputs) or 'input of no stack'}")
        entry = get(site.method)
        tokens = _build(entry, site, model.get_input_embeddings(), offered)
        added.append((tokens, entry.trains))
    projector = None
    if plan.projector is not None:
        embedding = model.get_input_embeddings()
        with allocation_guard("the visual projector"):
            projector = build_projector(plan.projector, plan.profile.d_model, embedding, norm=plan.profile.norm.kind,
                                        backbone_init=offered["backbone_init"]())
            dtype, device = dtype_device(embedding)
            projector.to(device=device, dtype=dtype)
        added.append((projector, lambda name: plan.train_projector))
    # Installed for every encoder-decoder model: without a projector its stacks then refuse visual
    # inputs instead of letting the model's **kwargs swallow them.
    if plan.profile.decoder_only and "decoder" in plan.profile.roles.inputs:
        install_causal_prefix(decoder_root(model, plan.profile), PrefixTokens(projector, tokens), outer=model)
    elif projector is not None or tokens is not None or _has_stacks(model, plan.profile):
        install_prefix(model, PrefixTokens(projector, tokens))
    return added


def _has_stacks(model: nn.Module, profile) -> bool:
    # transformers 5 gives every model get_encoder/get_decoder (a CLIP vision tower, LLaVA): only a
    # profile with an encoder stack is an encoder-decoder model whose inputs the prefix pass guards.
    if profile.decoder_only:
        return False
    return all(callable(getattr(model, name, None)) for name in ("get_encoder", "get_decoder"))


def _freeze(model: nn.Module, plan, base: set[str], added: list[Added]) -> None:
    """Pass 'freeze': base parameters train only when ``train`` names them; an added module's
    parameters as its rule says (its method's ``trains``; the projector's only with
    ``train projector``).  Rules go by parameter identity, not by name: a parameter shared by
    several added modules trains when any of them trains it."""
    trainable = set(plan.train)
    unknown = trainable - base
    if unknown:
        raise CompileError(f"the plan trains parameters the model does not have: {sorted(unknown)[:5]}")
    rules: dict[int, bool] = {}
    for module, trains in added:
        for name, param in module.named_parameters():
            rules[id(param)] = rules.get(id(param), False) or bool(trains(name))
    for name, param in model.named_parameters():
        if name in base:
            param.requires_grad_(name in trainable)
        else:
            param.requires_grad_(rules.get(id(param), True))
