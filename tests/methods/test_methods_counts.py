"""count(hp, dims) == parameters of build(hp, dims) minus shared tensors, for every valid design."""

from __future__ import annotations

import functools

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from torch import nn

from vlsurgery.errors import UsageError
from vlsurgery.methods import params as P
from vlsurgery.methods.projector import projector_count, VisualProjector
from vlsurgery.methods.registry import SiteDims, get

WIDTHS = st.sampled_from([4, 6, 8, 12, 16, 24, 32])
DIMS = st.builds(SiteDims, WIDTHS, WIDTHS)


@st.composite
def gate_fields(draw):
    granularity = draw(st.sampled_from(P.GRANULARITIES))
    fields = dict(granularity=granularity, scale=draw(st.sampled_from([1.0, 0.3])))
    if granularity == "matrix":
        fields.update(gate_r=draw(st.none() | st.integers(1, 12)), gate_init=draw(st.sampled_from(["default", "zero"])))
    return fields


@st.composite
def adapter_hp(draw):
    r = draw(st.none() | st.integers(1, 24))
    heads = draw(st.sampled_from([d for d in range(1, 9) if r is None or r % d == 0]))
    return P.AdapterParams(r=r, reduction=draw(st.integers(1, 12)), heads=heads,
                           activation=draw(st.sampled_from(P.ACTIVATIONS)),
                           placement=draw(st.sampled_from(["sequential", "parallel"])),
                           init=draw(st.sampled_from(["default", "zero"])), **draw(gate_fields()))


@st.composite
def compacter_hp(draw):
    n = draw(st.sampled_from([1, 2, 4]))
    r = draw(st.none() | st.sampled_from([n, 2 * n, 3 * n, 4 * n]))
    return P.CompacterParams(r=r, reduction=draw(st.sampled_from([1, 2, 4])), n=n, phm_rank=draw(st.integers(0, 3)),
                             shared=draw(st.booleans()), placement=draw(st.sampled_from(["sequential", "parallel"])),
                             init=draw(st.sampled_from(["default", "zero"])), **draw(gate_fields()))


@st.composite
def gate_hp(draw):
    fields = draw(gate_fields())
    if fields["granularity"] == "matrix" and fields["gate_r"] is None:
        fields["gate_r"] = 3
    return P.GateOnlyParams(**fields)


HPS = {
    "adapter": adapter_hp(),
    "compacter": compacter_hp(),
    "lora": st.builds(P.LoRAParams, r=st.integers(1, 12), alpha=st.sampled_from([1.0, 16.0]),
                      dropout=st.sampled_from([0.0, 0.1]), init=st.sampled_from(["default", "gaussian"]),
                      **{"granularity": st.sampled_from([g for g in P.GRANULARITIES if g != "matrix"])}),
    "lora-matrix": st.builds(P.LoRAParams, r=st.integers(1, 12), granularity=st.just("matrix"),
                             gate_r=st.none() | st.integers(1, 6)),
    "lite": st.builds(P.LiteParams, r=st.integers(1, 24), init=st.sampled_from(["default", "zero"])),
    "ia3": st.builds(P.IA3Params),
    "gate": gate_hp(),
    "prompt": st.builds(P.PromptParams, length=st.integers(1, 30), init=st.just("normal")),
    "none": st.just(P.NoneParams()),
}


def check_count(method, hp, dims):
    entry = get(method)
    final, problems = entry.finalize(hp, dims)
    if problems:  # an invalid design: counting or building it is refused, never half-done
        with pytest.raises(UsageError):
            entry.count(hp, dims)
        with pytest.raises(UsageError):
            entry.build(hp, dims)
        assume(False)
    assert entry.finalize(final, dims) == (final, [])  # idempotent
    store = nn.ParameterDict()
    module = entry.build(hp, dims, shared_params=store)
    shared = entry.shared(hp, dims)
    total = sum(p.numel() for p in module.parameters())
    assert entry.count(hp, dims) == total - sum(shared.values())
    assert {k: v.numel() for k, v in store.items()} == shared


@given(hp=adapter_hp(), dims=DIMS)
def test_adapter_count(hp, dims):
    check_count("adapter", hp, dims)


@given(hp=compacter_hp(), dims=DIMS)
def test_compacter_count(hp, dims):
    check_count("compacter", hp, dims)


@given(data=st.data(), dims=DIMS)
def test_other_counts(data, dims):
    key = data.draw(st.sampled_from(sorted(set(HPS) - {"adapter", "compacter"})))
    check_count(key.split("-")[0], data.draw(HPS[key]), dims)


@given(feat_dim=st.integers(1, 40), pos_dim=st.integers(1, 8), images=st.integers(1, 4), d=st.integers(1, 24),
       norm=st.sampled_from(["layernorm", "rmsnorm", "none-affine"]))
def test_projector_count(feat_dim, pos_dim, images, d, norm):
    norm = functools.partial(nn.LayerNorm, elementwise_affine=False) if norm == "none-affine" else norm
    params = P.ProjectorParams(feat_dim=feat_dim, pos_dim=pos_dim, images=images)
    proj = VisualProjector(d, params, nn.Embedding(3, d), norm=norm)
    assert projector_count(params, d, norm) == sum(p.numel() for p in proj.parameters())


def test_paper_configurations():
    """docs/paper.md §§2-4: BART-base (d=768) VL-PET-large and the decoder's lite adapter."""
    d = SiteDims(768, 768)
    bottleneck = 768 * 96 + 96 + 96 * 768 + 768
    large = P.AdapterParams(r=96, heads=4, granularity="large", gate_r=96)
    assert get("adapter").count(large, d) == 2 * bottleneck
    assert get("adapter").count(P.AdapterParams(r=96, heads=4, granularity="small"), d) == bottleneck + 2 * 768 + 1
    assert get("adapter").count(P.AdapterParams(r=96, heads=4, granularity="middleX"), d) == bottleneck + 768 + 1
    assert get("adapter").count(P.AdapterParams(r=96, heads=4, granularity="middleY"), d) == bottleneck + 768
    assert get("lite").count(P.LiteParams(r=96), d) == bottleneck
    assert get("adapter").count(P.AdapterParams(), d) == 768 * 96 * 2 + 96 + 768  # VL-Adapter d -> d/8 -> d
    assert get("lora").count(P.LoRAParams(r=8), d) == 8 * 1536
    # Compacter n=4, rank 1 on d=768, r=96: k(d + r) + r and k(r + d) + d, rule counted once
    assert get("compacter").count(P.CompacterParams(r=96), d) == (768 + 96 + 96) + (96 + 768 + 768)
    assert get("compacter").shared(P.CompacterParams(r=96), d) == {"compacter_phm_rule_n4": 64}


def test_multi_head_does_not_change_the_count():
    d = SiteDims(64, 64)
    counts = {get("adapter").count(P.AdapterParams(r=16, heads=h), d) for h in (1, 2, 4, 8, 16)}
    assert counts == {64 * 16 * 2 + 16 + 64}
    module = get("adapter").build(P.AdapterParams(r=16, heads=8), d)
    assert sum(p.numel() for p in module.parameters()) == counts.pop()
    assert module.delta.down.weight.shape == (16, 64)  # one fused Linear, heads are its row blocks
    assert isinstance(module.delta.down, nn.Linear) and module.delta.down.weight.dtype == torch.float32
