"""Helpers of the compiler tests: tiny random BART / T5 backbones and test-local site modules.

Site modules follow the convention ``module(x, h, mask=None) -> h_new``.  The real method modules
are tested elsewhere; here they only need to be (a) exactly the identity, (b) clearly not.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from transformers import BartConfig, BartForConditionalGeneration, T5Config, T5ForConditionalGeneration

from vlsurgery.compiler import Insertion, LayerEdit, Projection

D = 32


class Adapter(nn.Module):
    """h + Up(GELU(Down(src))), src = h (sequential) or x (parallel).  ``zero=True``: Up = 0, so the
    module is exactly the identity."""

    def __init__(self, d: int = D, r: int = 8, *, zero: bool = True, parallel: bool = False):
        super().__init__()
        self.down = nn.Linear(d, r)
        self.up = nn.Linear(r, d)
        self.parallel = parallel
        if zero:
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)
        else:
            nn.init.normal_(self.up.weight, std=0.5)

    def forward(self, x, h, mask=None):
        return h + self.up(nn.functional.gelu(self.down(x if self.parallel else h)))


class MaskRecorder(nn.Module):
    """Identity that records the masks it receives."""

    def __init__(self):
        super().__init__()
        self.masks = []

    def forward(self, x, h, mask=None):
        self.masks.append(mask)
        return h


def bart(seed: int = 0, dropout: float = 0.1, **kw) -> BartForConditionalGeneration:
    torch.manual_seed(seed)
    cfg = BartConfig(vocab_size=64, d_model=D, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                     decoder_attention_heads=4, encoder_ffn_dim=48, decoder_ffn_dim=48,
                     max_position_embeddings=64, dropout=dropout, attention_dropout=dropout,
                     activation_dropout=dropout, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                     decoder_start_token_id=2, forced_eos_token_id=None, **kw)
    return BartForConditionalGeneration(cfg).eval()


def t5(seed: int = 0, gated: bool = False, dropout: float = 0.1, **kw) -> T5ForConditionalGeneration:
    torch.manual_seed(seed)
    cfg = T5Config(vocab_size=64, d_model=D, d_kv=8, d_ff=48, num_layers=2, num_heads=4, dropout_rate=dropout,
                   feed_forward_proj="gated-gelu" if gated else "relu", pad_token_id=0, eos_token_id=1,
                   decoder_start_token_id=0, **kw)
    return T5ForConditionalGeneration(cfg).eval()


BACKBONES = {
    "bart": lambda **kw: bart(**kw),
    "t5": lambda **kw: t5(**kw),
    "t5-gated": lambda **kw: t5(gated=True, **kw),
}


def family(model) -> str:
    return "bart" if isinstance(model, BartForConditionalGeneration) else "t5"


def leaf_depth(model) -> int:
    return 1 if family(model) == "bart" else 3


def stacks(model):
    """(encoder layers, decoder layers, path prefixes) of a model."""
    if family(model) == "bart":
        return model.model.encoder.layers, model.model.decoder.layers, ("model.encoder.layers", "model.decoder.layers")
    return model.encoder.block, model.decoder.block, ("encoder.block", "decoder.block")


def every_site_edits(model, make) -> dict[str, LayerEdit]:
    """Sites at every sublayer of every layer plus the cross-attention value projection;
    ``make(name)`` builds the module of each site."""
    enc, dec, (pe, pd) = stacks(model)
    edits = {}
    if family(model) == "bart":
        enc_sites = [("self_attn", "self_attn:in", "self_attn:out"), ("ffn", "fc1:in", "fc2:out")]
        dec_sites = enc_sites[:1] + [("cross_attn", "encoder_attn:in", "encoder_attn:out")] + enc_sites[1:]
        v = "encoder_attn.v_proj"
    else:
        enc_sites = [("self_attn", "layer.0.layer_norm:in", "layer.0.SelfAttention:out"),
                     ("ffn", "layer.1.layer_norm:in", "layer.1.DenseReluDense:out")]
        dec_sites = [enc_sites[0], ("cross_attn", "layer.1.layer_norm:in", "layer.1.EncDecAttention:out"),
                     ("ffn", "layer.2.layer_norm:in", "layer.2.DenseReluDense:out")]
        v = "layer.1.EncDecAttention.v"
    for i in range(len(enc)):
        edits[f"{pe}.{i}"] = LayerEdit(tuple(Insertion(n, x, h, make(n)) for n, x, h in enc_sites))
    for i in range(len(dec)):
        edits[f"{pd}.{i}"] = LayerEdit(tuple(Insertion(n, x, h, make(n)) for n, x, h in dec_sites),
                                       (Projection(v, "cross_attn_v", make("cross_attn_v")),))
    return edits


def batch(model, seed: int = 0, pad: bool = True):
    """input_ids, attention_mask (last example padded when ``pad``), labels."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 64, (2, 7), generator=g)
    mask = torch.ones_like(ids)
    if pad:
        mask[1, -2:] = 0
        ids[1, -2:] = model.config.pad_token_id
    labels = torch.randint(3, 64, (2, 5), generator=g)
    return ids, mask, labels


@pytest.fixture(params=sorted(BACKBONES))
def backbone(request):
    """A factory for the parametrised backbone: ``backbone(seed=..., dropout=...)``."""
    return BACKBONES[request.param]


def twin(model):
    return copy.deepcopy(model)
