"""Shared cases for the methods tests: one table of site designs run through every invariant."""

from __future__ import annotations

import torch

from vlsurgery.methods import params as P
from vlsurgery.methods.registry import SiteDims, get

B, N = 2, 5

#: (id, method, hyperparameters, dims): every modification x every granularity at least once.
CASES = [
    ("adapter-seq", "adapter", P.AdapterParams(r=8), SiteDims(16, 16)),
    ("adapter-heads4-matrix", "adapter", P.AdapterParams(r=8, heads=4, granularity="matrix"), SiteDims(16, 16)),
    ("adapter-par-scalar", "adapter", P.AdapterParams(r=8, placement="parallel", granularity="scalar"),
     SiteDims(16, 24)),
    ("adapter-token", "adapter", P.AdapterParams(r=4, heads=2, granularity="token"), SiteDims(16, 16)),
    ("adapter-vector-relu", "adapter", P.AdapterParams(r=4, granularity="vector", activation="relu"),
     SiteDims(16, 16)),
    ("adapter-matrix-zero", "adapter", P.AdapterParams(r=4, granularity="matrix", gate_r=3, gate_init="zero",
                                                       init="zero"), SiteDims(12, 20)),
    ("lite", "lite", P.LiteParams(r=6), SiteDims(16, 24)),
    ("compacter-shared", "compacter", P.CompacterParams(r=8, n=4), SiteDims(16, 16)),
    ("compacter-full-token", "compacter", P.CompacterParams(r=8, n=2, phm_rank=0, shared=False,
                                                            granularity="token"), SiteDims(16, 16)),
    ("compacter-par-matrix", "compacter", P.CompacterParams(r=8, n=4, phm_rank=2, placement="parallel",
                                                            granularity="matrix"), SiteDims(16, 24)),
    ("lora", "lora", P.LoRAParams(r=4, alpha=8.0), SiteDims(16, 24)),
    ("lora-scalar", "lora", P.LoRAParams(r=4, granularity="scalar", init="gaussian"), SiteDims(16, 24)),
    ("gate-matrix", "gate", P.GateOnlyParams(granularity="matrix", gate_r=4), SiteDims(16, 24)),
    ("gate-token", "gate", P.GateOnlyParams(granularity="token"), SiteDims(16, 16)),
    ("ia3", "ia3", P.IA3Params(init=0.5), SiteDims(16, 24)),
    ("none", "none", P.NoneParams(), SiteDims(16, 24)),
]
IDS = [c[0] for c in CASES]


def build(method, hp, dims, **context):
    return get(method).build(hp, dims, **context)


def inputs(dims: SiteDims, dtype=torch.float32, seed: int = 1):
    """x (B, N, d_in), h (B, N, d_out) and a mask with padding at the end of the second example."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, N, dims.d_in, generator=g).to(dtype)
    h = torch.randn(B, N, dims.d_out, generator=g).to(dtype)
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[1, 3:] = False
    return x, h, mask


def randomise_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter random values (so zero-initialised parts take part in the maths)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return module
