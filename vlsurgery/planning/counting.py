"""Exact parameter accounting from a plan alone (docs/paper.md §6).

    total     = backbone parameters (tied tensors once, buffers excluded)
              + every site's module (registry ``count``) + shared tensors, each key once
              + the visual projector (its obj-order embedding is the token embedding: not again)
    trainable = sites + shared + projector (if trained) + base parameters named by ``train``
    trainable_percent = 100 * trainable / total    (a float at full precision; round to print)

The backbone's parameter count is arithmetic on its config (the profile's parameter table, verified
against ``named_parameters()`` of models built on the meta device), so counting t5-3b takes
milliseconds.  A model instance's profile carries the model's own parameter table instead
(``load_backbone``), so its count is exact even where the config is ambiguous (a T5 lm_head).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vlsurgery.methods.registry import count_projector
from vlsurgery.planning.model import Plan, PlannedSite


@dataclass(frozen=True)
class SiteCount:
    """Trainable parameters one site adds (its shared tensors excluded: see ``Count.shared``)."""

    path: str
    stack: str
    method: str
    trainable: int
    site: PlannedSite = field(repr=False, compare=False)


@dataclass(frozen=True)
class Count:
    """Parameter counts of the compiled model of a plan.

    ``base``: parameters of the backbone; ``base_trainable``: those made trainable by ``train``;
    ``added``: parameters of the PET modules (sites + shared); ``projector``: parameters of the
    visual projector (0 without one); ``by_method`` / ``by_stack``: trainable parameters grouped
    (by_stack has ``encoder``, ``decoder``, and ``projector`` / ``shared`` / ``embeddings`` for the
    trainable parameters outside both stacks).
    """

    backbone: str
    trainable: int
    total: int
    trainable_percent: float
    base: int
    base_trainable: int
    added: int
    projector: int
    projector_trainable: bool
    sites: tuple[SiteCount, ...]
    shared: dict[str, int]
    by_method: dict[str, int]
    by_stack: dict[str, int]
    plan: Plan = field(repr=False, compare=False)

    @property
    def frozen(self) -> int:
        return self.total - self.trainable


def count_plan(plan: Plan) -> Count:
    profile = plan.profile
    shared = plan.shared
    site_counts = tuple(SiteCount(s.path, s.stack, s.method, s.trainable, s) for s in plan.sites)
    added = sum(s.trainable for s in site_counts) + sum(shared.values())
    projector = count_projector(plan.projector, profile.d_model, profile.norm.kind) if plan.projector else 0
    base = profile.num_parameters
    base_trainable = sum(profile.numel(n) for n in plan.train)
    trainable = added + base_trainable + (projector if plan.train_projector else 0)
    total = base + added + projector

    by_method: dict[str, int] = {}
    by_stack: dict[str, int] = {}
    for s in site_counts:
        by_method[s.method] = by_method.get(s.method, 0) + s.trainable
        by_stack[s.stack] = by_stack.get(s.stack, 0) + s.trainable
    if shared:
        by_stack["shared"] = sum(shared.values())
    roots = {st.name: st.root + "." for st in profile.stacks}
    for name in plan.train:
        owner = next((stack for stack, root in roots.items() if name.startswith(root)), None)
        if owner is None:  # a stack's own norm outside its root (a vision tower's pre_layrnorm)
            owner = next((st.name for st in profile.stacks if name.rpartition(".")[0] in st.norms), "embeddings")
        if profile.own_projector and name.startswith(f"{profile.own_projector}."):
            owner = "projector"  # the model's own (LLaVA's multi_modal_projector)
        by_stack[owner] = by_stack.get(owner, 0) + profile.numel(name)
    if plan.train_projector:
        by_stack["projector"] = projector
    return Count(backbone=plan.backbone.name, trainable=trainable, total=total,
                 trainable_percent=100.0 * trainable / total if total else 0.0, base=base,
                 base_trainable=base_trainable, added=added, projector=projector,
                 projector_trainable=plan.train_projector, sites=site_counts, shared=shared,
                 by_method=by_method, by_stack=by_stack, plan=plan)
