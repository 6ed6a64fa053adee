"""Helpers shared by the end-to-end tests of compiled VL models (designs with a visual projector)."""

import torch
from pipeline_models import batch, fresh_model

from vlsurgery.compiler.compile import compile
from vlsurgery.resources import spec_library

#: The paper's VL-PET-large design for each tiny backbone: multi-head adapters with the matrix gate on
#: the encoder, lite adapters on the decoder's cross-attention values, a visual projector (2048-d
#: region features), encoder layer norms and the projector trained.
VL_PET_LARGE = {"tiny-bart": spec_library() / "paper/bart-base/vl-pet-large.vls",
                "tiny-t5": spec_library() / "paper/t5-base/vl-pet-large.vls",
                "tiny-t5-gated": spec_library() / "paper/t5-base/vl-pet-large.vls"}


def vis_inputs(batch_size: int = 2, regions: int = 3, feat_dim: int = 2048, seed: int = 2):
    """vis_feats (B, R, feat_dim) and vis_boxes (B, R, 4) with x1 < x2 and y1 < y2 in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(batch_size, regions, feat_dim, generator=g)
    lo = torch.rand(batch_size, regions, 2, generator=g) * 0.5
    hi = lo + 0.1 + torch.rand(batch_size, regions, 2, generator=g) * 0.4
    boxes = torch.stack([lo[..., 0], hi[..., 0], lo[..., 1], hi[..., 1]], dim=-1)
    return feats, boxes


def vl_model(backbone: str, *, seed: int = 0, base_seed: int = 0):
    """A fresh tiny backbone compiled with VL-PET-large (added modules initialised from ``seed``)."""
    return compile(VL_PET_LARGE[backbone], fresh_model(backbone, base_seed), seed=seed)


def vl_inputs(model, batch_size: int = 2, regions: int = 3):
    """Keyword inputs of a training step: text (second example padded), labels and visual regions."""
    ids, mask, labels = batch(model, batch_size=batch_size)
    feats, boxes = vis_inputs(batch_size, regions)
    return dict(input_ids=ids, attention_mask=mask, labels=labels, vis_feats=feats, vis_boxes=boxes)
