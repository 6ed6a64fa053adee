"""Hand-written references of VL-PET-large, and the frozen-backbone floor, for the step benchmark.

Three ways to run the same design on a plain Hugging Face BART or T5 model, written out here the way
an engineer would by hand (docs/paper.md §§2-5), with the weights copied from a model that
``vlsurgery.compile`` produced so that all of them compute the same function:

``fused``   one ``nn.Linear`` per down-projection (the h heads are its row blocks), the gate and the
            adapter in one small module, no Python branching in the forward; the encoder layer's
            own forward otherwise unchanged (its dropout calls included); the decoder's
            cross-attention value projection becomes ``v(x) + Up(GELU(Down(x)))``.
``paper``   the reference code's layout: h separate down-projection Linears and a concatenation
            per site; everything else as ``fused``.
``floor``   the frozen backbone alone: no added module, nothing trainable; the encoder input
            embeddings require grad, so backward still runs through every layer (what any PET
            method must pay).

Visual tokens: :class:`Projector` (feature and box Linears with a norm each, an image-order
embedding and the obj-order rows of the token embedding) is prepended to the embedded text, and
the attention mask is extended with ones, by :func:`reference_inputs`: once per step, and the one
extended mask goes to both stacks (the encoder's and, as cross-attention mask, the decoder's), which
is what an engineer writing the prefix by hand would do, and what the compiled model must match.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForSeq2SeqLM
from transformers.models.bart.modeling_bart import BartEncoderLayer
from transformers.models.t5.modeling_t5 import T5LayerFF, T5LayerSelfAttention

STYLES = ("fused", "paper")


# --------------------------------------------------------------------------------------- site modules
class FusedSite(nn.Module):
    """H' = G (.) (H + Up(gelu(Down(H)))), G = sigmoid(GUp(gelu(GDown(X)))); Down is one matrix."""

    def __init__(self, d: int, r: int, gate_r: int):
        super().__init__()
        self.down, self.up = nn.Linear(d, r), nn.Linear(r, d)
        self.gate_down, self.gate_up = nn.Linear(d, gate_r), nn.Linear(gate_r, d)

    def forward(self, x, h):
        h = h + self.up(F.gelu(self.down(h), approximate="tanh"))
        return torch.sigmoid(self.gate_up(F.gelu(self.gate_down(x), approximate="tanh"))) * h


class ScaledFusedSite(FusedSite):
    """The same with the constant s: H' = s * G (.) (H + dH) (VL-T5's s = 0.3)."""

    def __init__(self, d: int, r: int, gate_r: int, scale: float):
        super().__init__(d, r, gate_r)
        self.scale = scale

    def forward(self, x, h):
        return super().forward(x, h) * self.scale


class PaperSite(nn.Module):
    """The paper's code: ``heads`` separate down-projection Linears, concatenated."""

    def __init__(self, d: int, r: int, gate_r: int, heads: int, scale: float):
        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(d, r // heads) for _ in range(heads))
        self.up = nn.Linear(r, d)
        self.gate_down, self.gate_up = nn.Linear(d, gate_r), nn.Linear(gate_r, d)
        self.scale = scale

    def forward(self, x, h):
        down = torch.cat([head(h) for head in self.heads], dim=-1)
        h = h + self.up(F.gelu(down, approximate="tanh"))
        g = torch.sigmoid(self.gate_up(F.gelu(self.gate_down(x), approximate="tanh")))
        return self.scale * g * h if self.scale != 1.0 else g * h


class LiteLinear(nn.Linear):
    """The decoder's cross-attention value projection with VL-PET's lite adapter added in parallel."""

    def forward(self, x):
        return F.linear(x, self.weight, self.bias) + self.lite_up(F.gelu(self.lite_down(x), approximate="tanh"))


# --------------------------------------------------------------------------------------- layer forwards
class AdaptedBartEncoderLayer(BartEncoderLayer):
    """BartEncoderLayer.forward with a site on self-attention and on the feed-forward block."""

    def forward(self, hidden_states, attention_mask, **kwargs):
        residual = hidden_states
        attn, _ = self.self_attn(hidden_states, attention_mask=attention_mask, **kwargs)
        attn = self.adapt_self_attn(residual, attn)
        hidden_states = residual + F.dropout(attn, p=self.dropout, training=self.training)
        hidden_states = self.self_attn_layer_norm(hidden_states)
        residual = hidden_states
        ffn = self.activation_fn(self.fc1(hidden_states))
        ffn = self.fc2(F.dropout(ffn, p=self.activation_dropout, training=self.training))
        ffn = self.adapt_ffn(residual, ffn)
        hidden_states = residual + F.dropout(ffn, p=self.dropout, training=self.training)
        hidden_states = self.final_layer_norm(hidden_states)
        if hidden_states.dtype == torch.float16 and not torch.isfinite(hidden_states).all():
            bound = torch.finfo(hidden_states.dtype).max - 1000
            hidden_states = torch.clamp(hidden_states, min=-bound, max=bound)
        return hidden_states


class AdaptedT5SelfAttention(T5LayerSelfAttention):
    """Pre-LN T5: X = the un-normalised residual, H = SelfAttention(layer_norm(X))."""

    def forward(self, hidden_states, attention_mask=None, position_bias=None, cache=None, **kwargs):
        attn, position_bias, weights = self.SelfAttention(self.layer_norm(hidden_states), mask=attention_mask,
                                                          position_bias=position_bias, cache=cache, **kwargs)
        return hidden_states + self.dropout(self.adapt(hidden_states, attn)), position_bias, weights


class AdaptedT5FF(T5LayerFF):
    def forward(self, hidden_states):
        forwarded = self.DenseReluDense(self.layer_norm(hidden_states))
        return hidden_states + self.dropout(self.adapt(hidden_states, forwarded))


# --------------------------------------------------------------------------------------- projector
class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float = 1e-6):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(d)), eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


class Projector(nn.Module):
    """Regions -> tokens: Norm(Linear(f)) + Norm(Linear(box)) + img_order[m] + E[V-1-j]."""

    def __init__(self, d: int, feat_dim: int, pos_dim: int, images: int, embedding: nn.Embedding, rms: bool):
        super().__init__()
        norm = RMSNorm if rms else nn.LayerNorm
        self.feat, self.feat_norm = nn.Linear(feat_dim, d), norm(d)
        self.pos, self.pos_norm = nn.Linear(pos_dim, d), norm(d)
        self.img_order = nn.Embedding(images, d)
        self.table = (embedding,)  # shared, not owned

    def forward(self, feats, boxes, image_ids):
        table = self.table[0].weight
        obj = F.embedding(table.shape[0] - 1 - torch.arange(feats.shape[1], device=feats.device), table)
        tokens = self.feat_norm(self.feat(feats)) + self.pos_norm(self.pos(boxes))
        return tokens + self.img_order(image_ids) + obj


# --------------------------------------------------------------------------------------- building
def _encoder_layers(model):
    stack = model.get_encoder()
    return list(stack.layers) if hasattr(stack, "layers") else list(stack.block)


def _decoder_layers(model):
    stack = model.get_decoder()
    return list(stack.layers) if hasattr(stack, "layers") else list(stack.block)


def _site(style: str, source: nn.Module) -> nn.Module:
    """A reference site module holding ``source``'s weights (a vlsurgery VLPET site module)."""
    delta, gate, scale = source.delta, source.gate, source.scale
    d, r, gate_r = delta.down.in_features, delta.down.out_features, gate.down.out_features
    if style == "fused":
        site = FusedSite(d, r, gate_r) if scale == 1.0 else ScaledFusedSite(d, r, gate_r, scale)
        site.down.load_state_dict(delta.down.state_dict())
    else:
        site = PaperSite(d, r, gate_r, delta.heads, scale)
        for i, head in enumerate(site.heads):
            weight, bias = delta.head(i)
            head.load_state_dict({"weight": weight, "bias": bias})
    site.up.load_state_dict(delta.up.state_dict())
    site.gate_down.load_state_dict(gate.down.state_dict())
    site.gate_up.load_state_dict(gate.up.state_dict())
    return site.to(delta.down.weight.dtype)


def _base_copy(compiled: nn.Module) -> nn.Module:
    """A plain model of the compiled model's class and config, with its base weights."""
    model = AutoModelForSeq2SeqLM.from_config(compiled.config)
    missing, _ = model.load_state_dict(compiled.state_dict(), strict=False)
    if missing:
        raise RuntimeError(f"base weights not found in the compiled model: {missing[:5]}")
    return model.to(next(compiled.parameters()).dtype).train(compiled.training)


def _copy_lite(linear: nn.Linear, site: nn.Module) -> None:
    delta = site.delta
    linear.__class__ = LiteLinear
    linear.lite_down = nn.Linear(delta.down.in_features, delta.down.out_features).to(linear.weight.dtype)
    linear.lite_up = nn.Linear(delta.up.in_features, delta.up.out_features).to(linear.weight.dtype)
    linear.lite_down.load_state_dict(delta.down.state_dict())
    linear.lite_up.load_state_dict(delta.up.state_dict())


def _copy_projector(model, compiled, rms: bool) -> Projector:
    source = compiled.get_encoder().vls_prefix.projector
    p = source.params
    proj = Projector(model.config.d_model, p.feat_dim, p.pos_dim, p.images, model.get_input_embeddings(), rms)
    proj.load_state_dict(source.state_dict())
    return proj.to(source.feat.weight.dtype)


def build_reference(compiled: nn.Module, style: str) -> nn.Module:
    """The ``fused`` or ``paper`` reference of a model compiled with VL-PET-large, equal weights.

    Trainable, as in the compiled model: every added module, the projector and the encoder's
    layer norms.  The projector is ``model.vls_projector``."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}")
    model = _base_copy(compiled)
    model.requires_grad_(False)
    t5 = not hasattr(model.get_encoder(), "layers")
    for layer, source in zip(_encoder_layers(model), _encoder_layers(compiled)):
        sites = source.pet
        if t5:
            attn, ffn = layer.layer[0], layer.layer[-1]
            attn.__class__, ffn.__class__ = AdaptedT5SelfAttention, AdaptedT5FF
            attn.adapt, ffn.adapt = _site(style, sites["self_attn"]), _site(style, sites["ffn"])
            norms = [attn.layer_norm, ffn.layer_norm]
        else:
            layer.__class__ = AdaptedBartEncoderLayer
            layer.adapt_self_attn, layer.adapt_ffn = _site(style, sites["self_attn"]), _site(style, sites["ffn"])
            norms = [layer.self_attn_layer_norm, layer.final_layer_norm]
        for norm in norms:
            norm.requires_grad_(True)
    for layer, source in zip(_decoder_layers(model), _decoder_layers(compiled)):
        value = layer.layer[1].EncDecAttention.v if t5 else layer.encoder_attn.v_proj
        _copy_lite(value, source.pet["cross_attn_v"])
    stack = model.get_encoder()
    for name in ("layernorm_embedding", "layer_norm", "final_layer_norm"):
        if isinstance(getattr(stack, name, None), nn.Module):
            getattr(stack, name).requires_grad_(True)
    model.vls_projector = _copy_projector(model, compiled, t5)
    return model


def build_floor(compiled: nn.Module) -> nn.Module:
    """The frozen backbone with the compiled model's base weights; nothing trains."""
    return _base_copy(compiled).requires_grad_(False)


def reference_inputs(model: nn.Module, batch: dict) -> dict:
    """A reference model's keyword inputs for ``batch`` (compiled-model keywords): the embedded
    text with the projected regions before it, and the mask extended with ones."""
    embeds = model.get_encoder().embed_tokens(batch["input_ids"])
    prefix = model.vls_projector(batch["vis_feats"], batch["vis_boxes"], batch["vis_image_ids"])
    mask = batch["attention_mask"]
    mask = torch.cat([mask.new_ones(mask.shape[0], prefix.shape[1]), mask], dim=1)
    return dict(inputs_embeds=torch.cat([prefix, embeds], dim=1), attention_mask=mask, labels=batch["labels"])


def floor_inputs(model: nn.Module, batch: dict, generator: torch.Generator | None = None) -> dict:
    """The floor's keyword inputs: embeddings of the same shape as prefix + text, requiring grad."""
    ids, regions = batch["input_ids"], batch["vis_feats"].shape[1]
    embeds = torch.randn(ids.shape[0], regions + ids.shape[1], model.config.d_model, generator=generator,
                         dtype=model.get_input_embeddings().weight.dtype).to(ids.device).requires_grad_(True)
    mask = batch["attention_mask"]
    mask = torch.cat([mask.new_ones(mask.shape[0], regions), mask], dim=1)
    return dict(inputs_embeds=embeds, attention_mask=mask, labels=batch["labels"])
