"""The Plan: a spec resolved against a backbone, one :class:`PlannedSite` per concrete site.

A plan is everything the compiler and the counter need, computed without building a model::

    >>> from vlsurgery.planning import plan
    >>> p = plan("specs/examples/demo.vls")            # backbone tiny-bart
    >>> p.sites[0].path, p.sites[0].x_point, p.sites[0].h_point
    ('encoder[0].self_attn', 'self_attn:in', 'self_attn:out')

Site paths are canonical: ``encoder.input``, ``encoder[3].self_attn``, ``decoder[0].cross_attn.v``;
a projection role backed by several linears (``in`` of gated T5: ``wi_0`` and ``wi_1``) gives one
site per linear, ``encoder[0].ffn.in[wi_0]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vlsurgery.errors import Problem
from vlsurgery.planning.slots import Slot
from vlsurgery.profiles.profile import Profile


@dataclass(frozen=True, kw_only=True)
class PlannedSite(Slot):
    """A slot (where, its widths and points) and what goes there.

    ``kind`` is ``sublayer`` (``x_point``/``h_point`` set), ``projection`` (``linear`` set: the
    nn.Linear's path relative to ``layer_module``) or ``input`` (the stack's input; ``layer`` and
    ``layer_module`` None).  ``params`` is the method's finalised hyperparameter dataclass,
    ``trainable`` its parameter count without ``shared`` tensors, ``shared`` the tensors it shares
    with other sites (key, numel), ``statements`` the indices of the spec statements that shaped it.
    """

    method: str
    params: Any
    trainable: int
    shared: tuple[tuple[str, int], ...] = ()
    statements: tuple[int, ...] = ()

    @property
    def module_path(self) -> str | None:
        """Absolute path of the linear (projection sites) or of the layer (sublayer sites)."""
        if self.kind == "projection":
            return f"{self.layer_module}.{self.linear}"
        return self.layer_module


@dataclass(frozen=True)
class Plan:
    """A spec resolved against one backbone.

    ``train``: names of base parameters made trainable by ``train`` targets (sorted in model order);
    ``train_projector``: the projector is trainable; ``warnings``: Problems of severity warning
    (statements without effect).  ``backbone`` is the :class:`~vlsurgery.profiles.backbone.Backbone`
    (name, profile, config, maybe a model instance).
    """

    spec: Any
    backbone: Any = field(repr=False)
    sites: tuple[PlannedSite, ...]
    projector: Any
    train: tuple[str, ...]
    train_projector: bool
    warnings: tuple[Problem, ...] = ()

    @property
    def profile(self) -> Profile:
        return self.backbone.profile

    @property
    def config(self):
        return self.backbone.config

    @property
    def backbone_name(self) -> str:
        return self.backbone.name

    @property
    def shared(self) -> dict[str, int]:
        """Tensors shared across sites, each counted once: key -> numel."""
        out: dict[str, int] = {}
        for site in self.sites:
            out.update(site.shared)
        return out

    def site(self, path: str) -> PlannedSite:
        for s in self.sites:
            if s.path == path:
                return s
        raise KeyError(path)
