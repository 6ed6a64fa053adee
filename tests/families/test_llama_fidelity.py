"""One compiled LLaMA-layout decoder layer computes VL-PET's maths exactly.

The reference is straight-line float64 code written from the formulas, reading the backbone's and
the site modules' weights by name (nothing of the layer's own forward is called):

    rms(z, w)     = z / sqrt(mean(z^2) + eps) * w                    RMSNorm, scale only
    attention     q = n Wq^T (+bq), k = n Wk^T (+bk), v = n Wv^T (+bv) with n = rms(X, w_in);
                  k and v have n_kv < n_heads heads, each shared by n_heads / n_kv query heads
                  (grouped-query attention); rotary: q*cos + rot(q)*sin, the same for k;
                  causal softmax(q k^T / sqrt(head_dim)) v, heads concatenated, then Wo
    mlp           Wdown(silu(Wgate n) * Wup n) with n = rms(X, w_post)
    VL-PET site   dH = Up(gelu_tanh(Down(H))); H' = s * G (.) (H + dH)
                  G_large   = sigmoid(Up_g(gelu_tanh(Down_g(X))))     one value per token and channel
                  G_middleX = sigmoid(w . (X + H') + b)               one value per token

where X is the *un-normalised* residual input of the sublayer (the input of its RMSNorm) and H the
sublayer output before the residual add: out = X + H'.  A control checks that the comparison
notices a normalised X.
"""

import math

import pytest
import torch
from llama_models import TINY, fresh_model

import vlsurgery

SCALE = 0.3
SPEC = f"""
decoder.self_attn: adapter r=8 heads=4 granularity=large gate_r=4 scale={SCALE}
decoder.ffn: adapter r=8 granularity=middlex scale={SCALE}
"""


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def linear(z, p: dict, name: str):
    out = z @ p[f"{name}.weight"].T
    return out + p[f"{name}.bias"] if f"{name}.bias" in p else out


def rms(z, w, eps):
    return z / torch.sqrt(z.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(z):
    half = z.shape[-1] // 2
    return torch.cat([-z[..., half:], z[..., :half]], dim=-1)


def attention(p, n, cos, sin, heads, kv_heads, head_dim):
    b, t, _ = n.shape
    q = linear(n, p, "self_attn.q_proj").view(b, t, heads, head_dim).transpose(1, 2)
    k = linear(n, p, "self_attn.k_proj").view(b, t, kv_heads, head_dim).transpose(1, 2)
    v = linear(n, p, "self_attn.v_proj").view(b, t, kv_heads, head_dim).transpose(1, 2)
    assert k.shape[1] < q.shape[1]  # grouped-query attention: the test covers narrower k and v
    cos, sin = cos[:, None], sin[:, None]
    q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
    group = heads // kv_heads
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim)
    scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, heads * head_dim)
    return linear(out, p, "self_attn.o_proj")


def vl_pet(s: dict, site: str, x, h, heads: int = 1):
    w, b = s[f"{site}.delta.down.weight"], s[f"{site}.delta.down.bias"]
    size = w.shape[0] // heads
    down = torch.cat([h @ w[i * size:(i + 1) * size].T + b[i * size:(i + 1) * size] for i in range(heads)], -1)
    h_new = h + linear(gelu_tanh(down), s, f"{site}.delta.up")
    if f"{site}.gate.proj.weight" in s:  # middleX: one gate value per token
        g = torch.sigmoid(linear(x + h_new, s, f"{site}.gate.proj"))
    else:  # large: one per token and channel
        g = torch.sigmoid(linear(gelu_tanh(linear(x, s, f"{site}.gate.down")), s, f"{site}.gate.up"))
    return SCALE * g * h_new


def reference(p, s, x, cos, sin, config, *, normalised_x=False):
    eps, heads = config.rms_norm_eps, config.num_attention_heads
    kv, hd = config.num_key_value_heads, getattr(config, "head_dim", None) or config.hidden_size // heads
    n = rms(x, p["input_layernorm.weight"], eps)
    h = x + vl_pet(s, "self_attn", n if normalised_x else x, attention(p, n, cos, sin, heads, kv, hd), heads=4)
    n = rms(h, p["post_attention_layernorm.weight"], eps)
    mlp = linear(torch.nn.functional.silu(linear(n, p, "mlp.gate_proj")) * linear(n, p, "mlp.up_proj"), p, "mlp.down_proj")
    return h + vl_pet(s, "ffn", h, mlp)


@pytest.mark.parametrize("backbone", TINY)
def test_compiled_decoder_layer_matches_the_formulas(backbone):
    model = vlsurgery.compile(SPEC, fresh_model(backbone), seed=5).double().eval()
    layer = model.model.layers[1]
    g = torch.Generator().manual_seed(9)
    with torch.no_grad():
        for p in list(layer.pet.parameters()) + [layer.input_layernorm.weight, layer.post_attention_layernorm.weight]:
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5 + (1.0 if p.dim() == 1 else 0.0))
        x = torch.randn(2, 6, model.config.hidden_size, generator=g, dtype=torch.float64) * 3  # far from unit RMS
        positions = torch.arange(6).unsqueeze(0).expand(2, -1)
        cos, sin = model.model.rotary_emb(x, position_ids=positions)
        got = layer(x, attention_mask=None, position_ids=positions, position_embeddings=(cos, sin))
    got = got[0] if isinstance(got, tuple) else got
    params = {k: v for k, v in layer.state_dict().items() if not k.startswith("pet.")}
    sites = layer.pet.state_dict()
    with torch.no_grad():
        expected = reference(params, sites, x, cos, sin, model.config)
        control = reference(params, sites, x, cos, sin, model.config, normalised_x=True)
    assert got.dtype == torch.float64
    # LlamaRMSNorm computes in float32 whatever the dtype (so do Qwen2's): float32 rounding, no more
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)
    assert not torch.allclose(control, expected, atol=1e-4)  # the test sees where X is read
