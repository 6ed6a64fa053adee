"""Module maths against independent references written here, from docs/paper.md and the papers."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import nn

from methods_cases import build, inputs, randomise_
from vlsurgery.errors import UsageError
from vlsurgery.methods import params as P
from vlsurgery.methods.activations import make_activation
from vlsurgery.methods.bottleneck import Bottleneck
from vlsurgery.methods.compacter import PHMLinear, phm_rule_key
from vlsurgery.methods.gates import SATURATED_LOGIT, MatrixGate, ScalarGate, TokenGate, VectorGate
from vlsurgery.methods.lora import merge_lora, unmerge_lora
from vlsurgery.methods.projector import RMSNorm, VisualProjector, projector_count
from vlsurgery.methods.prompt import Prompt
from vlsurgery.methods.registry import SiteDims, count_projector, get


def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def test_gelu_new_is_the_tanh_approximation():
    x = torch.linspace(-6, 6, 101)
    torch.testing.assert_close(make_activation("gelu_new")(x), gelu_tanh(x))
    assert not torch.allclose(make_activation("gelu")(x), gelu_tanh(x), atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------ bottleneck


@pytest.mark.parametrize("heads", [1, 2, 4])
def test_fused_heads_equal_separate_linears(heads):
    d, r = 12, 8
    fused = randomise_(Bottleneck(d, r, d, heads=heads))
    separate = [nn.Linear(d, r // heads) for _ in range(heads)]
    with torch.no_grad():
        for i, lin in enumerate(separate):
            w, b = fused.head(i)
            lin.weight.copy_(w)
            lin.bias.copy_(b)
    _, h, _ = inputs(SiteDims(d, d))
    reference = fused.up(gelu_tanh(torch.cat([lin(h) for lin in separate], dim=-1)))
    torch.testing.assert_close(fused(None, h), reference)
    assert fused.head(heads - 1)[0].data_ptr() == fused.down.weight[(heads - 1) * r // heads].data_ptr()


@pytest.mark.parametrize("heads", [1, 4])
def test_heads_initialised_like_their_own_linears(heads):
    d, r, d_out = 20, 8, 12
    torch.manual_seed(7)
    fused = Bottleneck(d, r, d_out, heads=heads)
    torch.manual_seed(7)
    separate = [nn.Linear(d, r // heads) for _ in range(heads)]
    up = nn.Linear(r, d_out)
    assert torch.equal(fused.down.weight, torch.cat([lin.weight for lin in separate]))
    assert torch.equal(fused.down.bias, torch.cat([lin.bias for lin in separate]))
    assert torch.equal(fused.up.weight, up.weight) and torch.equal(fused.up.bias, up.bias)
    # each head's bound is 1/sqrt(fan_in) of its own Linear: fan_in = d for every head
    assert fused.down.weight.abs().max() <= 1 / math.sqrt(d)


def test_zero_init_up_and_placement():
    dims = SiteDims(12, 16)
    x, h, _ = inputs(dims)
    seq = build("adapter", P.AdapterParams(r=4, init="zero"), dims)
    assert seq.delta.down.in_features == 16 and torch.equal(seq.delta.up.weight, torch.zeros(16, 4))
    par = randomise_(build("adapter", P.AdapterParams(r=4, placement="parallel"), dims))
    assert par.delta.down.in_features == 12
    torch.testing.assert_close(par(x, h), h + par.delta.up(gelu_tanh(par.delta.down(x))))


def test_bottleneck_scaling():
    b = randomise_(Bottleneck(8, 4, 8, scaling=0.5))
    ref = Bottleneck(8, 4, 8)
    ref.load_state_dict(b.state_dict())
    _, h, _ = inputs(SiteDims(8, 8))
    torch.testing.assert_close(b(None, h), 0.5 * ref(None, h))


# ------------------------------------------------------------------------------------------ gates


def test_scalar_gate_shape_value_and_mask():
    d_in, d_out = 6, 10
    gate = randomise_(ScalarGate(d_in, d_out))
    x, h, mask = inputs(SiteDims(d_in, d_out))
    w, b = gate.proj.weight[0], gate.proj.bias[0]
    per_token = torch.sigmoid(x @ w[:d_in] + h @ w[d_in:] + b)  # (B, N): [X ; H'] order
    g = gate(x, h)
    assert g.shape == (2, 1, 1)
    torch.testing.assert_close(g[:, 0, 0], per_token.mean(dim=1))  # no mask: every position
    gm = gate(x, h, mask)
    torch.testing.assert_close(gm[:, 0, 0], torch.stack([per_token[0].mean(), per_token[1, :3].mean()]))
    # padding does not leak: changing padded positions changes nothing
    x2, h2 = x.clone(), h.clone()
    x2[1, 3:] += 100.0
    h2[1, 3:] -= 50.0
    torch.testing.assert_close(gate(x2, h2, mask), gm)
    assert torch.equal(gate(x, h, mask.long()), gm)
    empty = torch.zeros_like(mask)
    assert torch.equal(gate(x, h, empty), torch.zeros(2, 1, 1))


def test_token_gate_shape_and_value():
    gate = randomise_(TokenGate(8))
    x, h, _ = inputs(SiteDims(8, 8))
    g = gate(x, h)
    assert g.shape == (2, 5, 1)
    torch.testing.assert_close(g[..., 0], torch.sigmoid((x + h) @ gate.proj.weight[0] + gate.proj.bias[0]))


def test_vector_gate_shape_value_and_init():
    torch.manual_seed(0)
    gate = VectorGate(20000)
    assert gate(None, None).shape == (20000,)
    torch.testing.assert_close(gate(None, None), 1 + gate.z)
    assert abs(gate.z.std().item() - 0.02) < 0.001 and abs(gate.z.mean().item()) < 0.001


def test_matrix_gate_shape_value_and_zero_init():
    gate = randomise_(MatrixGate(6, 10, 3))
    x, h, _ = inputs(SiteDims(6, 10))
    g = gate(x, h)
    assert g.shape == (2, 5, 10)
    torch.testing.assert_close(g, torch.sigmoid(gate.up(gelu_tanh(gate.down(x)))))
    assert torch.equal(MatrixGate(6, 10, 3, init="zero")(x, h), torch.full((2, 5, 10), 0.5))


def test_saturated_logit_gives_exactly_one():
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        assert torch.sigmoid(torch.tensor(SATURATED_LOGIT, dtype=dtype)).item() == 1.0


@pytest.mark.parametrize("granularity", ["none", "scalar", "token", "vector", "matrix"])
@pytest.mark.parametrize("scale", [1.0, 0.3])
def test_combined_module_formula(granularity, scale):
    """H' = s * G (.) (H + dH), where the gate sees H + dH."""
    dims = SiteDims(8, 8)
    hp = P.AdapterParams(r=4, heads=2, granularity=granularity, scale=scale)
    module = randomise_(build("adapter", hp, dims))
    x, h, mask = inputs(dims)
    dh = module.delta.up(gelu_tanh(module.delta.down(h)))
    hp_ = h + dh
    if granularity == "none":
        g = torch.ones(())
    elif granularity == "scalar":
        w, b = module.gate.proj.weight[0], module.gate.proj.bias[0]
        tok = torch.sigmoid(x @ w[:8] + hp_ @ w[8:] + b)
        g = torch.stack([tok[0].mean(), tok[1, :3].mean()])[:, None, None]
    elif granularity == "token":
        g = torch.sigmoid((x + hp_) @ module.gate.proj.weight[0] + module.gate.proj.bias[0])[..., None]
    elif granularity == "vector":
        g = 1 + module.gate.z
    else:
        g = torch.sigmoid(module.gate.up(gelu_tanh(module.gate.down(x))))
    torch.testing.assert_close(module(x, h, mask), scale * g * hp_)


def test_lite_formula():
    dims = SiteDims(8, 12)
    module = randomise_(build("lite", P.LiteParams(r=4), dims))
    x, h, _ = inputs(dims)
    assert module.gate is None and module.scale == 1.0
    torch.testing.assert_close(module(x, h), h + module.delta.up(gelu_tanh(module.delta.down(x))))


# ------------------------------------------------------------------------------------------ LoRA


def test_lora_formula_merge_and_unmerge():
    dims = SiteDims(8, 12)
    module = randomise_(build("lora", P.LoRAParams(r=4, alpha=16.0), dims))
    base = randomise_(nn.Linear(8, 12), seed=5)
    x, _, _ = inputs(dims)
    lora = module.delta
    unmerged = module(x, base(x))
    torch.testing.assert_close(unmerged, base(x) + 4.0 * (x @ lora.A.t() @ lora.B.t()))
    w0 = base.weight.detach().clone()
    merge_lora(module, base)
    torch.testing.assert_close(base.weight, w0 + 4.0 * lora.B @ lora.A)
    torch.testing.assert_close(module(x, base(x)), unmerged)  # merged == unmerged
    with pytest.raises(UsageError, match="already merged"):
        merge_lora(module, base)
    unmerge_lora(module, base)
    torch.testing.assert_close(base.weight, w0)
    torch.testing.assert_close(module(x, base(x)), unmerged)


def test_lora_merge_refusals():
    dims = SiteDims(8, 12)
    gated = build("lora", P.LoRAParams(r=4, granularity="vector"), dims)
    with pytest.raises(UsageError, match="cannot be merged"):
        merge_lora(gated, nn.Linear(8, 12))
    with pytest.raises(UsageError, match="nn.Linear"):
        merge_lora(build("lora", P.LoRAParams(r=4), dims), nn.Linear(12, 8))
    with pytest.raises(UsageError, match="no LoRA"):
        merge_lora(build("adapter", P.AdapterParams(r=4), dims), nn.Linear(8, 12))


def test_lora_init():
    torch.manual_seed(0)
    module = build("lora", P.LoRAParams(r=4), SiteDims(64, 32))
    torch.manual_seed(0)
    assert torch.equal(module.delta.A, nn.Linear(64, 4).weight)
    assert torch.equal(module.delta.B, torch.zeros(32, 4))


# ------------------------------------------------------------------------------------------ Compacter


@pytest.mark.parametrize("phm_rank", [0, 1, 3])
def test_phm_weight_is_a_sum_of_kronecker_products(phm_rank):
    layer = randomise_(PHMLinear(8, 12, 4, phm_rank=phm_rank))
    blocks = (layer.B if phm_rank == 0 else [s @ t.T for s, t in zip(layer.s, layer.t)])
    reference = sum(torch.kron(layer.A[i], blocks[i]) for i in range(4))
    assert reference.shape == (12, 8)
    torch.testing.assert_close(layer.weight(), reference)
    x, _, _ = inputs(SiteDims(8, 8))
    torch.testing.assert_close(layer(x), x @ reference.T + layer.bias)


def test_compacter_shares_its_rule_through_the_store():
    store = nn.ParameterDict()
    dims = SiteDims(16, 16)
    hp = P.CompacterParams(r=8, n=4)
    a = build("compacter", hp, dims, shared_params=store)
    b = build("compacter", hp, SiteDims(16, 16), shared_params=store)
    rule = store[phm_rule_key(4)]
    assert a.delta.down.A is rule and a.delta.up.A is rule and b.delta.down.A is rule
    model = nn.ModuleDict({"a": a, "b": b})
    model.shared = store
    entry = get("compacter")
    expected = 2 * entry.count(hp, dims) + sum(entry.shared(hp, dims).values())
    assert sum(p.numel() for p in model.parameters()) == expected
    unshared = build("compacter", P.CompacterParams(r=8, n=4, shared=False), dims, shared_params=store)
    assert unshared.delta.down.A is not unshared.delta.up.A and len(store) == 1


def test_compacter_initialisation():
    torch.manual_seed(0)
    layer = PHMLinear(400, 800, 4, phm_rank=0)
    assert abs(layer.A.std().item() - 0.01) < 0.003
    bound = math.sqrt(6 / (100 + 200))  # Glorot-uniform on each (200, 100) block
    assert layer.B.abs().max() <= bound and layer.B.abs().max() > 0.9 * bound
    assert torch.equal(layer.bias, torch.zeros(800))


# ------------------------------------------------------------------------------------------ IA3, prompt


def test_ia3_formula():
    dims = SiteDims(8, 12)
    module = randomise_(build("ia3", P.IA3Params(), dims))
    x, h, _ = inputs(dims)
    torch.testing.assert_close(module(x, h), h * module.scale)
    assert torch.equal(build("ia3", P.IA3Params(init=0.5), dims).scale, torch.full((12,), 0.5))


def test_prompt():
    emb = nn.Embedding(50, 8)
    torch.manual_seed(3)
    prompt = build("prompt", P.PromptParams(length=4), SiteDims(8, 8), token_embedding=emb)
    out = prompt(3)
    assert out.shape == (3, 4, 8) and torch.equal(out[0], out[2])
    rows = [(emb.weight == row).all(dim=1).any().item() for row in prompt.prompt]
    assert all(rows)  # each prompt vector is a copy of a token embedding
    assert prompt.prompt.data_ptr() != emb.weight.data_ptr()
    normal = build("prompt", P.PromptParams(length=4, init="normal"), SiteDims(8, 8))
    assert isinstance(normal, Prompt)
    with pytest.raises(UsageError, match="token embedding"):
        build("prompt", P.PromptParams(length=4), SiteDims(8, 8))
    with pytest.raises(UsageError, match="no identity"):
        normal.make_identity_()


# ------------------------------------------------------------------------------------------ projector


def reference_projector(proj, feats, boxes, image_ids, emb, norm):
    area = (boxes[..., 1] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 2])
    pos_in = torch.cat([boxes, area[..., None]], -1)
    feat = norm(proj.feat_norm, feats @ proj.feat.weight.T + proj.feat.bias)
    pos = norm(proj.pos_norm, pos_in @ proj.pos.weight.T + proj.pos.bias)
    regions = feats.shape[1]
    obj = emb.weight[emb.weight.shape[0] - 1 - torch.arange(regions)]
    return feat + pos + proj.img_order.weight[image_ids] + obj


def layer_norm(mod, v):
    mu, var = v.mean(-1, keepdim=True), v.var(-1, unbiased=False, keepdim=True)
    return (v - mu) / torch.sqrt(var + mod.eps) * mod.weight + mod.bias


def rms_norm(mod, v):
    return mod.weight * v / torch.sqrt(v.pow(2).mean(-1, keepdim=True) + mod.eps)


@pytest.mark.parametrize("norm,ref_norm", [("layernorm", layer_norm), ("rmsnorm", rms_norm)])
def test_projector_matches_reference(norm, ref_norm):
    d, params = 16, P.ProjectorParams(feat_dim=12, pos_dim=5, images=2)
    emb = nn.Embedding(40, d)
    proj = randomise_(VisualProjector(d, params, emb, norm=norm))
    g = torch.Generator().manual_seed(0)
    feats, boxes = torch.randn(2, 7, 12, generator=g), torch.rand(2, 7, 4, generator=g)
    image_ids = torch.tensor([[0] * 4 + [1] * 3, [1] * 7])
    out = proj(feats, boxes, image_ids)
    assert out.shape == (2, 7, d)
    torch.testing.assert_close(out, reference_projector(proj, feats, boxes, image_ids, emb, ref_norm))
    torch.testing.assert_close(proj(feats, boxes), proj(feats, boxes, torch.zeros(2, 7, dtype=torch.long)))
    forward = VisualProjector(d, params, emb, norm=norm, obj_order="forward")
    forward.load_state_dict(proj.state_dict())
    shift = (emb.weight[:7] - emb.weight[39 - torch.arange(7)]).expand(2, 7, d)
    torch.testing.assert_close(forward(feats, boxes, image_ids) - out, shift)


@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm", functools.partial(nn.LayerNorm, elementwise_affine=False),
                                  functools.partial(nn.LayerNorm, bias=False)])
def test_projector_shares_the_token_embedding_and_counts(norm):
    d, params = 16, P.ProjectorParams(feat_dim=12, pos_dim=5, images=3)
    emb = nn.Embedding(40, d)
    proj = VisualProjector(d, params, emb, norm=norm)
    assert proj.token_embedding is emb
    own = sum(p.numel() for p in proj.parameters())
    assert own == projector_count(params, d, norm) == count_projector(params, d, norm)
    assert not any(k.startswith("_") or "token" in k for k in proj.state_dict())
    model = nn.ModuleDict({"embed": emb, "projector": proj})
    assert sum(p.numel() for p in model.parameters()) == own + 40 * d
    assert own == 12 * d + d + 5 * d + d + 3 * d + 2 * sum(p.numel() for p in proj.feat_norm.parameters())


def test_projector_refusals():
    emb = nn.Embedding(5, 8)
    proj = VisualProjector(8, P.ProjectorParams(feat_dim=4), emb)
    with pytest.raises(UsageError, match="feats"):
        proj(torch.randn(1, 2, 3), torch.rand(1, 2, 4))
    with pytest.raises(UsageError, match="boxes"):
        proj(torch.randn(1, 2, 4), torch.rand(1, 2, 3))
    with pytest.raises(UsageError, match="regions"):
        proj(torch.randn(1, 6, 4), torch.rand(1, 6, 4))
    with pytest.raises(UsageError, match="width"):
        VisualProjector(16, P.ProjectorParams(), emb)
    with pytest.raises(UsageError):
        VisualProjector(8, P.ProjectorParams(), None)
    proj(torch.randn(1, 2, 4), torch.rand(1, 2, 5))  # a box that already carries its 5th number


def test_rmsnorm_half_precision_and_formula():
    norm = randomise_(RMSNorm(8))
    x = torch.randn(3, 8)
    torch.testing.assert_close(norm(x), rms_norm(norm, x))
    assert norm.to(torch.bfloat16)(x.bfloat16()).dtype == torch.bfloat16


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_projector_in_half_precision(dtype):
    emb = nn.Embedding(10, 8)  # the backbone's embedding may stay in another dtype
    proj = VisualProjector(8, P.ProjectorParams(feat_dim=4), emb, norm="rmsnorm")
    g = torch.Generator().manual_seed(0)
    feats, boxes = torch.randn(2, 3, 4, generator=g), torch.rand(2, 3, 4, generator=g)
    out = proj.to(dtype)(feats, boxes)
    assert out.dtype == dtype and emb.weight.dtype == torch.float32  # moving the projector leaves E alone
    torch.testing.assert_close(out.float(), proj.float()(feats, boxes), atol=0.1, rtol=0.05)
