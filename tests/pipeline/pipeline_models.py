"""Small random backbones for the end-to-end tests (the shipped tiny presets, seeded)."""

import torch
from transformers import AutoModelForSeq2SeqLM

from vlsurgery.profiles import preset_config

TINY = ("tiny-bart", "tiny-t5", "tiny-t5-gated")


def fresh_model(name: str, seed: int = 0):
    torch.manual_seed(seed)
    return AutoModelForSeq2SeqLM.from_config(preset_config(name)).eval()


def batch(model, seed: int = 1, batch_size: int = 2, length: int = 7):
    """input_ids, attention_mask (second example padded) and labels for ``model``'s vocabulary."""
    g = torch.Generator().manual_seed(seed)
    vocab = model.config.vocab_size
    ids = torch.randint(3, vocab, (batch_size, length), generator=g)
    mask = torch.ones(batch_size, length, dtype=torch.long)
    mask[1, length - 2:] = 0
    labels = torch.randint(3, vocab, (batch_size, 5), generator=g)
    return ids, mask, labels
