"""torch.compile (aot_eager, fullgraph) accepts the site modules: once per kind, small shapes (slow)."""

from __future__ import annotations

import torch
from torch import nn

from methods_cases import build, inputs, randomise_
from vlsurgery.methods import params as P
from vlsurgery.methods.projector import VisualProjector
from vlsurgery.methods.registry import SiteDims


class Sites(nn.Module):
    """Several site modules in one graph, so one compilation covers them all."""

    def __init__(self, dims):
        super().__init__()
        store = nn.ParameterDict()
        self.adapter = build("adapter", P.AdapterParams(r=4, heads=2, granularity="scalar", scale=0.3), dims)
        self.matrix = build("adapter", P.AdapterParams(r=4, granularity="matrix", placement="parallel"), dims)
        self.compacter = build("compacter", P.CompacterParams(r=4, n=2, granularity="token"), dims,
                               shared_params=store)
        self.lora = build("lora", P.LoRAParams(r=2, granularity="vector"), dims)
        self.ia3 = build("ia3", P.IA3Params(), dims)
        self.prompt = build("prompt", P.PromptParams(length=3, init="normal"), dims)
        self.projector = VisualProjector(dims.d_out, P.ProjectorParams(feat_dim=6), nn.Embedding(20, dims.d_out),
                                         norm="rmsnorm")

    def forward(self, x, h, mask, feats, boxes):
        for site in (self.adapter, self.matrix, self.compacter, self.lora, self.ia3):
            h = site(x, h, mask)
        return h, self.prompt(x.shape[0]), self.projector(feats, boxes)


def test_compiled_sites_match_eager():
    dims = SiteDims(8, 8)
    torch.manual_seed(0)
    model = randomise_(Sites(dims))
    x, h, mask = inputs(dims)
    feats, boxes = torch.randn(2, 4, 6), torch.rand(2, 4, 4)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    expected = model(x, h, mask, feats, boxes)
    got = compiled(x, h, mask, feats, boxes)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)
    sum(t.square().sum() for t in got).backward()
    assert all(p.grad is not None for p in model.parameters())
