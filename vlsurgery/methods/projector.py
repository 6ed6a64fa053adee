"""The visual projector of VL-BART / VL-T5 (docs/paper.md §5): image regions -> d-wide tokens.

For region j of an example, with feature f_j (feat_dim), box (x1, x2, y1, y2) and image id m_j::

    pos_j    = (x1, x2, y1, y2, (x2 - x1) * (y2 - y1))      (area appended to 4-number boxes)
    token_j  = Norm_f(Linear_{feat_dim->d}(f_j)) + Norm_p(Linear_{pos_dim->d}(pos_j))
               + img_order[m_j] + E[obj_id(j)]

E is the backbone's token embedding matrix, *shared*: the projector keeps a plain reference to the
embedding (``projector.token_embedding``, held in a tuple so that nn.Module does not register it),
so E is not a parameter of the projector: ``projector.parameters()`` and its ``state_dict`` leave
it out, and the model that owns the embedding counts it once.  ``obj_id(j) = V - 1 - j`` (``obj_order="reverse"``, the
reference's choice: regions use the last rows of the vocabulary, VL-T5's <vis_extra_id_*> tokens) or
``j`` (``obj_order="forward"``).  The projector's own device/dtype moves do not move E: the owning
model does.  The Norm is a constructor argument: ``"layernorm"`` (nn.LayerNorm, BART),
``"rmsnorm"`` (:class:`RMSNorm`, weight only, T5) or any factory ``d -> nn.Module``.

Parameters: ``feat_dim*d + d + pos_dim*d + d + images*d + 2 * norm(d)`` with norm(d) = 2d
(LayerNorm), d (RMSNorm); see :func:`projector_count`.  Initialisation: ``init_feat``,
``init_pos`` and ``init_img_order`` (the initialisers of :mod:`vlsurgery.methods.initializers`;
``default``: PyTorch's, so img_order ~ N(0, 1); ``backbone`` on BART: N(0, init_std^2), biases 0,
as the reference, which builds the projector inside the model); norms start at 1 (and 0).  There
is no identity (it creates tokens).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vlsurgery.errors import UsageError
from vlsurgery.methods.params import ProjectorParams
from vlsurgery.methods.counts import norm_count, projector_count  # noqa: F401 (re-exported)
from vlsurgery.methods.initializers import BackboneInit, init_linear_, init_tensor_
from vlsurgery.methods.prompt import embedding_weight


def as_dtype(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t`` in ``dtype``; ``t`` itself, with no op dispatched, when it already is."""
    return t if t.dtype == dtype else t.to(dtype)


class RMSNorm(nn.Module):
    """T5-style weight-only norm: y = w (.) x / sqrt(mean(x^2) + eps), statistics in float32."""

    def __init__(self, d: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Casts only where the dtype changes: a cast to the same dtype still dispatches an aten op.
        x = as_dtype(x, torch.float32)
        return self.weight * as_dtype(x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps),
                                      self.weight.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


NORMS: dict[str, Callable[[int], nn.Module]] = {"layernorm": nn.LayerNorm, "rmsnorm": RMSNorm}


def norm_factory(norm) -> Callable[[int], nn.Module]:
    if callable(norm):
        return norm
    if norm in NORMS:
        return NORMS[norm]
    raise UsageError(f"norm must be one of {', '.join(NORMS)} or a factory d -> nn.Module, got {norm!r}")


class VisualProjector(nn.Module):
    """Region features (B, R, feat_dim) and boxes (B, R, 4 or pos_dim) -> tokens (B, R, d)."""

    def __init__(self, d: int, params: ProjectorParams | None = None, token_embedding=None, *,
                 norm="layernorm", obj_order: str = "reverse", backbone: BackboneInit | None = None):
        super().__init__()
        params = params or ProjectorParams()
        if token_embedding is None:
            raise UsageError("the visual projector needs the backbone's token embedding (obj-order embedding)")
        if obj_order not in ("reverse", "forward"):
            raise UsageError(f"obj_order must be reverse or forward, not {obj_order!r}")
        weight = embedding_weight(token_embedding)
        if weight.shape[1] != d:
            raise UsageError(f"token embedding width {weight.shape[1]} != projector width {d}")
        self.params, self.obj_order = params, obj_order
        factory = norm_factory(norm)
        self.feat = nn.Linear(params.feat_dim, d)
        self.feat_norm = factory(d)
        self.pos = nn.Linear(params.pos_dim, d)
        self.pos_norm = factory(d)
        self.img_order = nn.Embedding(params.images, d)
        # Built with PyTorch's defaults first (the random stream of the plain modules), then re-drawn.
        for key, linear in (("init_feat", self.feat), ("init_pos", self.pos)):
            if getattr(params, key) != "default":
                init_linear_(linear, getattr(params, key), backbone=backbone, what=key)
        if params.init_img_order != "default":  # an embedding: the backbone's rule reads no fan-in
            init_tensor_(self.img_order.weight, None, params.init_img_order, lambda: None, backbone=backbone,
                         embedding=True, what="init_img_order")
        # A tuple is not a Module: nn.Module keeps it as a plain attribute, so E is shared, not owned.
        self._shared_embedding = (token_embedding,)

    @property
    def token_embedding(self):
        """The backbone's token embedding (shared reference; not a submodule of the projector)."""
        return self._shared_embedding[0]

    def _obj_ids(self, regions: int, vocab: int, device) -> torch.Tensor:
        ids = torch.arange(regions, device=device)
        return vocab - 1 - ids if self.obj_order == "reverse" else ids

    def forward(self, feats: torch.Tensor, boxes: torch.Tensor, image_ids: torch.Tensor | None = None) -> torch.Tensor:
        p = self.params
        if feats.dim() != 3 or feats.shape[-1] != p.feat_dim:
            raise UsageError(f"feats must be (B, R, {p.feat_dim}), got {tuple(feats.shape)}")
        if boxes.shape[:-1] != feats.shape[:-1] or boxes.shape[-1] not in (p.pos_dim - 1, p.pos_dim):
            raise UsageError(f"boxes must be (B, R, {p.pos_dim - 1}) or (B, R, {p.pos_dim}), got {tuple(boxes.shape)}")
        dtype = self.feat.weight.dtype
        if boxes.shape[-1] == p.pos_dim - 1 == 4:
            area = (boxes[..., 1] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 2])
            boxes = torch.cat([boxes, area.unsqueeze(-1)], dim=-1)
        elif boxes.shape[-1] != p.pos_dim:
            raise UsageError(f"boxes must carry all {p.pos_dim} position numbers (the area is only appended "
                             "to 4-number boxes)")
        batch, regions = feats.shape[:2]
        table = embedding_weight(self.token_embedding)
        if regions > table.shape[0]:
            raise UsageError(f"{regions} regions but only {table.shape[0]} obj-order embeddings")
        if image_ids is None:
            image_ids = torch.zeros(batch, regions, dtype=torch.long, device=feats.device)
        tokens = self.feat_norm(self.feat(as_dtype(feats, dtype))) + self.pos_norm(self.pos(as_dtype(boxes, dtype)))
        obj = F.embedding(self._obj_ids(regions, table.shape[0], feats.device), table)  # (R, d)
        return tokens + self.img_order(image_ids) + as_dtype(obj, tokens.dtype)

    def make_identity_(self):
        raise UsageError("the visual projector creates tokens: it has no identity setting")

    def extra_repr(self) -> str:
        return f"obj_order={self.obj_order}"
