"""``apply_sites``: sites on a projection's output, on the whole of it or on column slices, chain in
order exactly as if each wrote its slice back on its own, with one concatenation per run of
disjoint slices."""

from __future__ import annotations

import torch

from site_references import one_cat_per_site as per_site
from vlsurgery.methods.projections import apply_sites


class Affine(torch.nn.Module):
    """A site reading x and h: h * a + mean(x) * b (distinct per site, so order matters)."""

    def __init__(self, a: float, b: float):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x, h):
        return h * self.a + x.mean(-1, keepdim=True) * self.b


def cats(sites, x, h) -> int:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        apply_sites(sites, x, h)
    return sum(event.name == "aten::cat" for event in prof.events())


def test_chained_whole_and_overlapping_slices_match_the_per_site_formula_bit_for_bit():
    x, h = torch.randn(2, 3, 5), torch.randn(2, 3, 12)
    sites = [(Affine(1.5, 0.1), (0, 4)), (Affine(0.7, 0.2), (0, 4)),   # chained on one slice
             (Affine(1.1, 0.3), None),                                 # must see both
             (Affine(0.9, 0.4), (2, 6)), (Affine(1.3, 0.5), (4, 8)),   # overlapping: written back between
             (Affine(0.6, 0.6), (8, 12))]
    assert torch.equal(apply_sites(sites, x, h), per_site(sites, x, h))
    assert cats(sites, x, h) == 3  # before the whole-output site, before (4, 8), at the end


def test_no_column_site_no_concatenation():
    x, h = torch.randn(2, 3, 5), torch.randn(2, 3, 12)
    sites = [(Affine(1.5, 0.1), None), (Affine(0.7, 0.2), None)]
    assert torch.equal(apply_sites(sites, x, h), per_site(sites, x, h))
    assert cats(sites, x, h) == 0
    assert apply_sites((), x, h) is h
