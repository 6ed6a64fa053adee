"""One compiled encoder layer computes VL-PET's maths exactly (docs/paper.md §§2 and 3).

The reference below is written from the paper's description only: it reads the site modules'
weights out of their state_dicts by name and recomputes, in float64,

    Down(z)  = concat_i (W_i z + b_i)       head i = rows [i r/h, (i+1) r/h) of the fused matrix
    dH       = Up(gelu_tanh(Down(H)))      sequential: the modification reads H
    G        = sigmoid(Up_g(gelu_tanh(Down_g(X))))               G_large, one value per token and channel
    H'       = s * G (.) (H + dH)

at the right dataflow points: BART (post-LN) self-attention X = the layer input, H = the attention
output before the residual add; feed-forward X = fc1's input, H = fc2's output; then residual add
and LayerNorm.  T5 (pre-LN): X = the un-normalised residual, H = SelfAttention(layer_norm(X)) or
DenseReluDense(layer_norm(X)), out = X + H'.  Backbone parts are the layer's own submodules.
The up-projections are randomised so that every part of the formula matters; a control checks that
the comparison notices a wrong X.
"""

import math

import pytest
import torch
from pipeline_models import fresh_model

from vlsurgery.compiler.compile import compile

R, HEADS, GATE_R, SCALE = 8, 4, 8, 0.3
SPEC = f"encoder.{{self_attn,ffn}}: adapter r={R} heads={HEADS} granularity=matrix gate_r={GATE_R} scale={SCALE}"


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def linear(z, w, b):
    return z @ w.T + b


def vl_pet(state: dict, x, h):
    """H' = s * G (.) (H + dH) from a site module's state_dict (keys delta.*, gate.*)."""
    w, b = state["delta.down.weight"], state["delta.down.bias"]
    size = w.shape[0] // HEADS
    heads = [linear(h, w[i * size:(i + 1) * size], b[i * size:(i + 1) * size]) for i in range(HEADS)]
    delta = linear(gelu_tanh(torch.cat(heads, dim=-1)), state["delta.up.weight"], state["delta.up.bias"])
    g = torch.sigmoid(linear(gelu_tanh(linear(x, state["gate.down.weight"], state["gate.down.bias"])),
                             state["gate.up.weight"], state["gate.up.bias"]))
    return SCALE * g * (h + delta)


def compiled_layer(backbone: str):
    model = compile(SPEC, fresh_model(backbone), seed=5).double().eval()
    stack = model.get_encoder()
    layer = stack.layers[0] if hasattr(stack, "layers") else stack.block[0]
    g = torch.Generator().manual_seed(9)
    with torch.no_grad():
        for site in layer.pet.values():  # non-identity: random Up of the modification and of the gate
            for lin in (site.delta.up, site.gate.up):
                lin.weight.copy_(torch.randn(lin.weight.shape, generator=g, dtype=torch.float64) * 0.5)
                lin.bias.copy_(torch.randn(lin.bias.shape, generator=g, dtype=torch.float64) * 0.5)
    sites = {name: site.state_dict() for name, site in layer.pet.items()}
    x = torch.randn(2, 5, model.config.d_model, generator=g, dtype=torch.float64)
    return layer, sites, x


def bart_reference(layer, sites, x, *, wrong_x=False):
    attn = layer.self_attn(x, attention_mask=None)[0]
    h = layer.self_attn_layer_norm(x + vl_pet(sites["self_attn"], attn if wrong_x else x, attn))
    ffn = layer.fc2(layer.activation_fn(layer.fc1(h)))
    return layer.final_layer_norm(h + vl_pet(sites["ffn"], h, ffn))


def t5_reference(block, sites, x, *, wrong_x=False):
    attn_part, ffn_part = block.layer[0], block.layer[-1]
    normed = attn_part.layer_norm(x)
    attn = attn_part.SelfAttention(normed, mask=None, position_bias=None)[0]
    h = x + vl_pet(sites["self_attn"], normed if wrong_x else x, attn)
    ffn = ffn_part.DenseReluDense(ffn_part.layer_norm(h))
    return h + vl_pet(sites["ffn"], h, ffn)


@pytest.mark.parametrize("backbone", ["tiny-bart", "tiny-t5", "tiny-t5-gated"])
def test_compiled_layer_matches_reference(backbone):
    layer, sites, x = compiled_layer(backbone)
    assert set(sites) == {"self_attn", "ffn"}
    assert sites["ffn"]["delta.down.weight"].shape == (R, x.shape[-1])
    with torch.no_grad():
        if backbone == "tiny-bart":
            got = layer(x, attention_mask=None)
            ref, wrong = bart_reference(layer, sites, x), bart_reference(layer, sites, x, wrong_x=True)
        else:
            got = layer(x, attention_mask=None, position_bias=None)[0]
            ref, wrong = t5_reference(layer, sites, x), t5_reference(layer, sites, x, wrong_x=True)
    got = got[0] if isinstance(got, tuple) else got
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, ref, atol=1e-10, rtol=0)
    # the control: the comparison is sensitive to where X is read
    assert not torch.allclose(wrong, ref, atol=1e-4)


def test_site_module_alone_matches_reference_and_exposes_its_heads():
    """The site module called directly (any X, H) equals the reference, and its per-head views are
    the row blocks of the fused Down in head order (the state-dict layout a user reads heads from)."""
    layer, sites, x = compiled_layer("tiny-bart")
    site = layer.pet.ffn
    h = torch.randn(2, 5, x.shape[-1], dtype=torch.float64)
    with torch.no_grad():
        got = site(x, h)
        torch.testing.assert_close(got, vl_pet(sites["ffn"], x, h), atol=1e-10, rtol=0)
        size = R // HEADS
        for i in range(HEADS):
            w, b = site.delta.head(i)
            assert torch.equal(w, sites["ffn"]["delta.down.weight"][i * size:(i + 1) * size])
            assert torch.equal(b, sites["ffn"]["delta.down.bias"][i * size:(i + 1) * size])
