"""Small shared helpers for the profiles tests: tiny configs of every family, meta-device models."""

from __future__ import annotations

import logging

import torch
import transformers

transformers.logging.set_verbosity_error()
logging.getLogger("transformers").setLevel(logging.ERROR)

BART_LIKE = dict(vocab_size=96, d_model=16, encoder_layers=2, decoder_layers=3, encoder_attention_heads=2,
                 decoder_attention_heads=4, encoder_ffn_dim=24, decoder_ffn_dim=40, max_position_embeddings=32,
                 pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2)
T5_LIKE = dict(vocab_size=96, d_model=16, d_kv=6, d_ff=24, num_layers=2, num_decoder_layers=3, num_heads=3,
               relative_attention_num_buckets=8, relative_attention_max_distance=16)


def family_configs():
    """(id, config) of small random configs covering each family and its variants."""
    from transformers import BartConfig, MarianConfig, MBartConfig, MT5Config, PegasusConfig, T5Config

    return [
        ("bart", BartConfig(**BART_LIKE)),
        ("bart-untied", BartConfig(**BART_LIKE, tie_word_embeddings=False)),
        ("mbart", MBartConfig(**BART_LIKE)),
        ("marian", MarianConfig(**{**BART_LIKE, "pad_token_id": 95, "decoder_start_token_id": 95})),
        ("marian-separate-vocab", MarianConfig(**{**BART_LIKE, "pad_token_id": 60, "decoder_start_token_id": 60},
                                               share_encoder_decoder_embeddings=False, decoder_vocab_size=80)),
        ("pegasus", PegasusConfig(**BART_LIKE)),
        ("t5", T5Config(**T5_LIKE)),
        ("t5-gated", T5Config(**T5_LIKE, feed_forward_proj="gated-gelu")),
        ("mt5", MT5Config(**T5_LIKE)),
    ]


def model_class(profile):
    return getattr(transformers, profile.model_class)


def build_meta(config, profile):
    with torch.device("meta"):
        return model_class(profile)(config)


def build_cpu(config, profile, seed=0):
    torch.manual_seed(seed)
    return model_class(profile)(config).eval()
