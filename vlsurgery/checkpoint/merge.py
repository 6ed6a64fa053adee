"""Merging: fold every exactly-linear site into the weight of the projection it sits on.

A projection site turns ``h = W x + b`` into ``h' = site(x, h)``.  When ``h'`` is again an affine
function of ``x`` alone, the site folds into ``(W, b)`` and disappears:

=========================  ===========================================  ===========================
site                       h'                                           folded
=========================  ===========================================  ===========================
``lora`` (no gate)         s (W x + b + (alpha/r) B A x)                W <- s (W + (alpha/r) B A), b <- s b
``lora granularity=vector``  s (1 + z) (.) (W x + b + (alpha/r) B A x)  W <- s diag(1 + z) (W + ...), ...
``ia3``                    l (.) (W x + b)                              W <- diag(l) W, b <- l (.) b
``gate granularity=vector``  s (1 + z) (.) (W x + b)                    W <- s diag(1 + z) W, ...
=========================  ===========================================  ===========================

Everything else is refused, site by site, with the reason: ``lite``, ``adapter`` and ``compacter``
put an activation between Down and Up (GELU for ``lite``), so their update is not linear in x; the
scalar, token and matrix gates are sigmoids of the input (the vector gate is a constant per
channel, which is why it folds); a sublayer site's H is the output of a whole attention or
feed-forward block, not of one Linear, so there is no weight to fold into; prompt tokens and the
visual projector add tokens, not weights.  On one projection, sites apply in order, so a foldable
site after one that cannot fold stays too (folding it would change what the earlier site reads),
unless the two own disjoint output columns of a fused projection (GPT-2's q and k in ``c_attn``:
a site on a column slice folds into W's rows of that slice only).

``merge(model)`` works in place and is all or nothing: it refuses (:class:`MergeError`, every
site listed) unless every site folds, and then returns the plain Hugging Face model (original
classes, no ``pet`` modules, no vlsurgery left).  ``partial=True`` folds what folds, keeps the
rest (and warns, listing them by address); the model then still needs vlsurgery and carries the
design it now is (the spec plus a ``none`` statement per folded site) on a merged base, so it is
kept with ``save_pretrained`` (which writes the merged base next to the checkpoint), not with
``vlsurgery.save`` alone.  Weights are folded in float64 and rounded once into their dtype, so merged
and unmerged logits agree to that rounding.  LoRA dropout is ignored, as in eval mode.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from vlsurgery.checkpoint.hf import disable_save_pretrained, enable_save_pretrained
from vlsurgery.checkpoint.saving import BASE_MERGED_ATTR
from vlsurgery.checkpoint.marker import spec_of
from vlsurgery.compiler.compile import SHARED_ATTR, site_name
from vlsurgery.compiler.design import unmark
from vlsurgery.compiler.causal_prefix import causal_roots, remove_causal_prefix
from vlsurgery.compiler.prefix import PREFIX_ATTR, remove_prefix
from vlsurgery.compiler.design import mark
from vlsurgery.compiler.install import PET_ATTR, is_rewritten, original_class, swap_class
from vlsurgery.compiler.transaction import transaction
from vlsurgery.checkpoint.errors import MergeError
from vlsurgery.errors import UsageError

CONSTANT_GATES = ("none", "vector")
_NONLINEAR_GATE = {"scalar": "the mean over tokens of sigmoid(Linear([X; H']))",
                   "token": "sigmoid(Linear(X + H')) per token", "matrix": "sigmoid(Up(GELU(Down(X))))"}


@dataclass(frozen=True)
class SiteMerge:
    """One site and whether it folds into a weight (``reason`` says why not)."""

    path: str
    method: str
    folds: bool
    reason: str = ""


@dataclass(frozen=True)
class MergeReport:
    """What :func:`merge` does with each site of a design."""

    sites: tuple[SiteMerge, ...]

    @property
    def merged(self) -> tuple[SiteMerge, ...]:
        return tuple(s for s in self.sites if s.folds)

    @property
    def kept(self) -> tuple[SiteMerge, ...]:
        return tuple(s for s in self.sites if not s.folds)

    def __str__(self) -> str:
        lines = [f"folds     {s.path} ({s.method})" for s in self.merged]
        lines += [f"cannot    {s.path} ({s.method}): {s.reason}" for s in self.kept]
        return "\n".join(lines) or "(no sites)"


def _gate_reason(params) -> str | None:
    granularity = getattr(params, "granularity", "none")
    if granularity in CONSTANT_GATES:
        return None
    return (f"its gate (granularity={granularity}) is {_NONLINEAR_GATE.get(granularity, 'input-dependent')}: "
            "G depends on the input, so G (.) h is not a linear function of x")


def _why_not(site) -> str | None:
    """None when ``site`` (a PlannedSite) folds into its projection's weight, else the reason."""
    method, params = site.method, site.params
    if site.kind == "input":
        return "prompt tokens are prepended to the encoder input: they add tokens, not a change of any weight"
    if site.kind == "sublayer":
        return ("on a sublayer, H is the output of a whole attention or feed-forward block, not of one "
                "nn.Linear: there is no weight to fold it into")
    if method == "lite":
        return "lite is v(x) + Up(GELU(Down(x))): the GELU makes the update a non-linear function of x"
    if method in ("adapter", "compacter"):
        return (f"{method} is Up({params.activation}(Down(.))): merging a bottleneck is not supported "
                "(with a non-linear activation it is not linear in x at all)")
    if method in ("lora", "gate"):
        return _gate_reason(params)
    if method == "ia3":
        return None
    return f"method {method} has no merge rule"


def merge_report(spec, backbone=None) -> MergeReport:
    """Which sites of ``spec`` on ``backbone`` fold into weights and why the others cannot; the
    visual projector is listed as ``projector``.

    >>> print(merge_report("backbone tiny-bart\\ndecoder.cross_attn.v: lora r=2\\ndecoder[1].cross_attn.q: lite r=2"))
    folds     decoder[0].cross_attn.v (lora)
    folds     decoder[1].cross_attn.v (lora)
    cannot    decoder[1].cross_attn.q (lite): lite is v(x) + Up(GELU(Down(x))): the GELU makes the update a non-linear function of x
    """
    from vlsurgery.planning import Plan, plan

    p = spec if isinstance(spec, Plan) else plan(spec, backbone)
    out, blocked = [], {}  # projection -> [(columns, path)] of its sites that cannot fold, in order
    for site in p.sites:
        reason = _why_not(site)
        where = site.module_path if site.kind == "projection" else None
        # a site on other output columns of a fused projection (GPT-2's k vs q) never reads this one's
        earlier = next((path for columns, path in blocked.get(where, ()) if _overlap(columns, site.columns)), None)
        if reason is None and earlier is not None:
            reason = (f"it follows {earlier} on the same projection, which cannot fold: folding this one "
                      "would change what that site reads")
        if reason is not None and where is not None:
            blocked.setdefault(where, []).append((site.columns, site.path))
        out.append(SiteMerge(site.path, site.method, reason is None, reason or ""))
    if p.projector is not None:
        out.append(SiteMerge("projector", "projector", False,
                             "the visual projector turns region features into tokens: no backbone weight to fold into"))
    return MergeReport(tuple(out))


def _overlap(a, b) -> bool:
    """Whether two column ranges of one projection's output overlap (None: all its columns)."""
    return a is None or b is None or (a[0] < b[1] and b[0] < a[1])


def _folded(linear, modules, columns) -> tuple:
    """(weight, bias) of ``linear`` with ``modules`` (its first sites, all foldable) folded in; a
    site with ``columns`` (start, stop) folds into those output rows only (GPT-2's q in c_attn).
    Computed in nn.Linear's layout, returned in the module's own (Conv1D stores it transposed)."""
    import torch

    from vlsurgery.methods.ia3 import IA3
    from vlsurgery.methods.projections import is_transposed, linear_weight

    w = linear_weight(linear).detach().to(torch.float64, copy=True)  # (d_out, d_in)
    b = linear.bias.detach().to(torch.float64, copy=True) if linear.bias is not None else None
    for module, cols in zip(modules, columns):
        rows = slice(None) if cols is None else slice(*cols)
        part = w[rows]
        if isinstance(module, IA3):
            scale = module.scale.detach().double().to(w.device)
        else:  # a VLPET: optional LoRA, optional vector gate, constant scale
            delta = module.delta
            if delta is not None and not getattr(delta, "merged", False):
                part = part + delta.delta_weight().double().to(w.device)
            scale = torch.full((part.shape[0],), module.scale, dtype=torch.float64, device=w.device)
            if module.gate is not None:
                scale = scale * (1 + module.gate.z.detach().double().to(w.device))
        w[rows] = part * scale[:, None]
        if b is not None:
            b[rows] = b[rows] * scale
    w = w.t() if is_transposed(linear) else w
    return w.to(linear.weight.dtype), (b.to(linear.bias.dtype) if b is not None else None)


def merge(model, spec=None, *, partial: bool = False):
    """Fold every linear site of the compiled ``model`` into its base weights, in place; returns
    the model (see the module docstring).  ``spec``: needed when the model carries none."""
    import torch

    from vlsurgery.planning import plan

    text = spec_of(model)
    if text is None and spec is None:
        raise UsageError("this model carries no spec: pass the spec it was compiled with, merge(model, spec=...)")
    p = plan(spec if spec is not None else text, model.config)
    report = merge_report(p)
    if report.kept and not partial:
        raise MergeError(f"{len(report.kept)} site(s) cannot be folded into the base weights; nothing was changed:\n"
                         + "\n".join(f"  {s.path} ({s.method}): {s.reason}" for s in report.kept)
                         + "\nuse partial=True (vlsurgery merge --partial) to fold the others and keep these")
    folds = {s.path for s in report.merged}
    by_linear: dict[str, list] = {}
    for site in p.sites:
        if site.path in folds:
            by_linear.setdefault(site.module_path, []).append(site)
    updates = []  # (linear, layer, names, weight, bias), all computed before anything changes
    for path, sites in by_linear.items():
        layer, linear = model.get_submodule(sites[0].layer_module), model.get_submodule(path)
        pet = layer._modules.get(PET_ATTR)
        names = [site_name(s.path) for s in sites]
        modules = [pet[n] if pet is not None and n in pet else None for n in names]
        attached = linear.__dict__.get("_vls_sites", ())  # (module, columns) pairs, in order
        at = {id(m): i for i, (m, _) in enumerate(attached)}
        order = [at.get(id(m)) for m in modules]
        if None in order or order != sorted(order):  # kept sites may sit between them (other columns)
            raise MergeError(f"{path}: its sites are not those the spec places there: the model was not compiled "
                             "with this spec (or was changed since)")
        updates.append((linear, layer, names, *_folded(linear, modules, [attached[i][1] for i in order])))
    remaining = _remaining_spec(p, report) if report.kept else None
    with transaction(model):
        _unwire(model, updates, partial=bool(report.kept))
        if remaining is not None:  # what the model now is: the kept sites on a merged base
            mark(model, remaining)
            model.__dict__[BASE_MERGED_ATTR] = True
            enable_save_pretrained(model)
        with torch.no_grad():
            backups = [(lin.weight, lin.weight.detach().clone()) for lin, *_ in updates]
            backups += [(lin.bias, lin.bias.detach().clone()) for lin, *_ in updates if lin.bias is not None]
            try:
                for linear, _, _, weight, bias in updates:
                    linear.weight.copy_(weight)
                    if bias is not None:
                        linear.bias.copy_(bias)
            except BaseException:
                for target, value in backups:
                    target.copy_(value)
                raise
    if report.kept:
        warnings.warn(f"merge(partial=True) kept {len(report.kept)} site(s) that cannot fold; the model still needs "
                      "vlsurgery: " + "; ".join(f"{s.path} ({s.reason})" for s in report.kept), stacklevel=2)
    return model


def _unwire(model, updates, *, partial: bool) -> None:
    """Take the folded site modules out of the model; with nothing kept, every class goes back."""
    for linear, layer, names, _, _ in updates:
        pet = layer._modules[PET_ATTR]
        folded = {id(pet[name]) for name in names}
        remaining = tuple((m, cols) for m, cols in linear.__dict__["_vls_sites"] if id(m) not in folded)
        for name in names:
            del pet[name]
        if remaining:
            object.__setattr__(linear, "_vls_sites", remaining)
        else:
            linear.__dict__.pop("_vls_sites", None)
            swap_class(linear, original_class(linear))
        if len(pet) == 0 and not is_rewritten(layer):
            del layer._modules[PET_ATTR]
    disable_save_pretrained(model)  # the model no longer is the design it was compiled from
    unmark(model)
    if not partial:
        _unwire_stacks(model)
        return
        left = [path or "<root>" for path, m in model.named_modules() if is_rewritten(m) or PET_ATTR in m._modules]
        if left:
            raise MergeError(f"internal: modules still rewritten after a full merge: {', '.join(left)}")


def _unwire_stacks(model) -> None:
    """The encoder and decoder back to their classes when their prefix pass prepends nothing
    (compile runs it for every design), and an empty shared store removed."""
    prefix = model.get_encoder()._modules.get(PREFIX_ATTR)
    if prefix is not None and prefix.empty:
        remove_prefix(model)
    for root in causal_roots(model):  # a decoder-only model's base model (compiler.causal_prefix)
        if root._modules[PREFIX_ATTR].empty:
            remove_causal_prefix(root, model)  # and the model's visual keywords, if it has them
    store = model._modules.get(SHARED_ATTR)
    if store is not None and len(store) == 0:
        del model._modules[SHARED_ATTR]


def _remaining_spec(p, report):
    """The design a partially merged model still carries: the spec with a ``none`` statement for
    every folded site (``encoder[0].ffn.in[wi_0]`` is addressed as ``encoder[0].ffn.in``, which
    folds or keeps both of its linears together).  Checked by planning it: its sites must be
    exactly the kept ones, else the merge is refused."""
    import re

    from vlsurgery.planning import plan
    from vlsurgery.spec import dumps, parse

    addresses = dict.fromkeys(re.sub(r"\[\w+\]$", "", s.path) for s in report.merged)
    text = dumps(p.spec) + "".join(f"\n{address}: none" for address in addresses)
    spec = parse(text)
    kept = {s.path for s in report.kept if s.path != "projector"}
    if {s.path for s in plan(spec, p.backbone).sites} != kept:
        raise MergeError("a partial merge must leave a design vlsurgery can describe, and removing the folded "
                         f"sites from the spec ({', '.join(addresses)}) also removes others: merge fully or not at all")
    return spec
