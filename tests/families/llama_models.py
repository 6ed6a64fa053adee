"""Tiny random decoder-only backbones (the shipped ``tiny-llama`` and ``tiny-qwen2`` presets), seeded."""

import torch

from vlsurgery.profiles.backbone import load_model

TINY = ("tiny-llama", "tiny-qwen2")


def fresh_model(name: str, seed: int = 0):
    model, _ = load_model(name, seed=seed)
    return model.eval()


def batch(model, seed: int = 1, batch_size: int = 2, length: int = 7):
    """input_ids and a left-padded attention_mask (the second example has two pads), as a causal
    LM is batched for generation; labels = input_ids (the loss ignores the pads)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, model.config.vocab_size, (batch_size, length), generator=g)
    mask = torch.ones(batch_size, length, dtype=torch.long)
    mask[1, :2] = 0
    ids[1, :2] = model.config.pad_token_id
    labels = ids.masked_fill(mask == 0, -100)
    return ids, mask, labels


def perturb_(model, seed=0, scale=0.3):
    """Move every trainable tensor, so that no site is an identity and every one shows in the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * scale)
    return model


def site_modules(model):
    """Every site module vlsurgery put into the layers (``...layers.<i>.pet.<name>``)."""
    return [m for name, m in model.named_modules() if name.rsplit(".", 2)[-2:-1] == ["pet"]]
