"""Models and inputs for the checkpoint tests: tiny random backbones, seeded, trained by a perturbation."""

import torch
from transformers import AutoModelForSeq2SeqLM

from vlsurgery.compiler.compile import compile
from vlsurgery.profiles import preset_config

#: A design with every kind of checkpoint tensor: sites under `pet`, the projector and its frozen
#: parts under `vls_prefix`, a trained base layer norm, and LoRA on projections.
VL_DESIGN = """
projector feat_dim=16
train encoder.layernorm, projector
encoder.{self_attn,ffn}: adapter r=4 heads=2 granularity=matrix
decoder.cross_attn.v: lite r=4
decoder.self_attn.q: lora r=2
"""
#: Only exactly linear sites: merges completely.
LINEAR_DESIGN = """
decoder.cross_attn.v: lora r=2 alpha=4 scale=0.5 granularity=vector
encoder.self_attn.q: ia3
decoder.ffn.out: gate granularity=vector
encoder.ffn.in: lora r=3
"""


def fresh(backbone: str, seed: int = 0):
    torch.manual_seed(seed)
    return AutoModelForSeq2SeqLM.from_config(preset_config(backbone)).eval()


def trained(spec: str, backbone: str, *, seed: int = 1, base_seed: int = 0):
    """``spec`` compiled onto a fresh backbone, every checkpoint tensor moved (as training would)."""
    model = compile(spec, fresh(backbone, base_seed), seed=seed)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad or ".vls_prefix." in f".{name}":
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return model


def inputs(model, visual: bool = True):
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(3, model.config.vocab_size, (2, 6), generator=g)
    mask = torch.ones(2, 6, dtype=torch.long)
    mask[1, 4:] = 0
    out = dict(input_ids=ids, attention_mask=mask, decoder_input_ids=ids[:, :4])
    if visual:
        lo = torch.rand(2, 3, 2, generator=g) * 0.5
        hi = lo + 0.2
        out.update(vis_feats=torch.randn(2, 3, 16, generator=g),
                   vis_boxes=torch.stack([lo[..., 0], hi[..., 0], lo[..., 1], hi[..., 1]], dim=-1))
    return out


def logits(model, batch):
    model.eval()
    with torch.no_grad():
        return model(**batch).logits
