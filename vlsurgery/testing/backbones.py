"""Small random backbones for property tests: configs of the families vlsurgery's tests draw.

Every config :func:`backbones` draws has 1 to 3 layers per stack and widths that are multiples of 4
and at least 8; :func:`references` gives the BARTs a spec drawn without a backbone is resolved on.
"""

from __future__ import annotations

from functools import lru_cache

from hypothesis import strategies as st

#: Families ``backbones()`` draws from.
FAMILIES = ("bart", "t5", "t5-gated")


@lru_cache(maxsize=None)
def _pick_cached(options: tuple):
    return st.sampled_from(options)


def pick(options):
    """``sampled_from``, built once per option list (building strategies in every draw is slow)."""
    return _pick_cached(tuple(options))


ints = lru_cache(maxsize=None)(st.integers)


@st.composite
def _bart(draw):
    from transformers import BartConfig

    d = draw(pick([16, 8, 24, 32]))
    return BartConfig(vocab_size=64, d_model=d, encoder_layers=draw(ints(1, 3)),
                      decoder_layers=draw(ints(1, 3)),
                      encoder_attention_heads=draw(pick([h for h in (2, 1, 4) if d % h == 0])),
                      decoder_attention_heads=draw(pick([h for h in (2, 1, 4) if d % h == 0])),
                      encoder_ffn_dim=draw(pick([32, 16, 48])),
                      decoder_ffn_dim=draw(pick([32, 16, 48])), max_position_embeddings=64,
                      tie_word_embeddings=draw(pick([True, False])), pad_token_id=1, bos_token_id=0,
                      eos_token_id=2, decoder_start_token_id=2, forced_bos_token_id=0, forced_eos_token_id=2)


@st.composite
def _t5(draw, gated: bool):
    from transformers import T5Config

    heads = draw(pick([2, 1, 4]))
    d_kv = draw(pick([8] if heads == 1 else [4, 8]))  # attention width heads * d_kv >= 8
    return T5Config(vocab_size=64, d_model=draw(pick([16, 8, 24, 32])), d_kv=d_kv,
                    d_ff=draw(pick([32, 16, 48])), num_layers=draw(ints(1, 3)),
                    num_decoder_layers=draw(ints(1, 3)), num_heads=heads, relative_attention_num_buckets=8,
                    relative_attention_max_distance=16,
                    feed_forward_proj="gated-gelu" if gated else "relu",
                    pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    # tie_word_embeddings=False on T5 describes a checkpoint with its own lm_head, which building
    # from the config does not give (transformers 5 ties it): see vlsurgery/profiles/t5.py


@st.composite
def _llama(draw, model_type: str):
    """A LLaMA-layout decoder (``llama`` or ``qwen2``: q/k/v biases): grouped-query attention
    with 1 to 4 query heads of width 8 and a divisor of them as key-value heads."""
    from transformers import AutoConfig

    heads = draw(pick([2, 1, 4]))
    return AutoConfig.for_model(model_type, vocab_size=64, hidden_size=draw(pick([16, 8, 24, 32])),
                                intermediate_size=draw(pick([32, 16, 48])), num_hidden_layers=draw(ints(1, 3)),
                                num_attention_heads=heads, num_key_value_heads=draw(pick([k for k in (1, 2, 4)
                                                                                          if heads % k == 0])),
                                head_dim=8, tie_word_embeddings=draw(pick([False, True])), pad_token_id=0,
                                bos_token_id=1, eos_token_id=2)


@st.composite
def _gpt2(draw):
    """A GPT-2: Conv1D projections, q/k/v as column slices of the fused c_attn, 1 to 3 layers."""
    from transformers import GPT2Config

    d = draw(pick([16, 8, 24, 32]))
    return GPT2Config(vocab_size=64, n_positions=64, n_embd=d, n_layer=draw(ints(1, 3)),
                      n_head=draw(pick([h for h in (2, 1, 4) if d % h == 0])),
                      n_inner=draw(pick([None, 16, 48])), tie_word_embeddings=draw(pick([True, False])),
                      bos_token_id=0, eos_token_id=2, pad_token_id=1)


@st.composite
def _vision(draw, model_type: str, min_layers: int = 1):
    """A CLIP or SigLIP vision tower (``clip_vision_model``, ``siglip_vision_model``): 16-pixel
    images in 8-pixel patches, 1 to 3 layers."""
    from transformers import AutoConfig

    d = draw(pick([16, 8, 24, 32]))
    return AutoConfig.for_model(model_type, hidden_size=d, intermediate_size=draw(pick([32, 16, 48])),
                                num_hidden_layers=draw(ints(min_layers, 3)), image_size=16, patch_size=8,
                                num_attention_heads=draw(pick([h for h in (2, 1, 4) if d % h == 0])))


@st.composite
def _llava(draw):
    """A LLaVA: a CLIP or SigLIP tower of 2 or 3 layers (LLaVA reads all but the last, by default)
    and a Llama or Qwen2 language model."""
    from transformers import LlavaConfig

    tower = draw(_vision(draw(pick(["clip_vision_model", "siglip_vision_model"])), min_layers=2))
    text = draw(_llama(draw(pick(["llama", "qwen2"]))))
    return LlavaConfig(vision_config=tower.to_dict(), text_config=text.to_dict(), image_token_id=63,
                       multimodal_projector_bias=draw(pick([True, False])))


#: Families ``backbones(families=...)`` can draw besides the default ones (specs drawn without a
#: backbone do not fit them: give ``specs`` the drawn config, as :func:`designs` does).
OTHER_FAMILIES = ("llama", "qwen2", "gpt2", "clip-vision", "siglip-vision", "llava")


def backbones(families=FAMILIES):
    """Small random configs (``transformers.PretrainedConfig``) of the given families.

    ``bart``, ``t5`` (ReLU feed-forward) and ``t5-gated`` (T5 v1.1, gated GELU: ``in`` is two
    linears).  1 to 3 layers per stack, d_model 8..32, tied or untied embeddings (BART); every width
    (d_model, feed-forward, attention) is a multiple of 4 and at least 8, which is what
    :func:`specs` without a backbone relies on.  Shrinks towards a BART with one layer per stack.
    ``llama`` and ``qwen2`` (LLaMA-layout decoders), ``gpt2``, ``clip-vision`` and ``siglip-vision`` (vision
    towers) and ``llava`` (:data:`OTHER_FAMILIES`) are drawn only when named.
    """
    makers = {"bart": _bart(), "t5": _t5(False), "t5-gated": _t5(True), "llama": _llama("llama"),
              "qwen2": _llama("qwen2"), "gpt2": _gpt2(), "clip-vision": _vision("clip_vision_model"),
              "siglip-vision": _vision("siglip_vision_model"), "llava": _llava()}
    unknown = [f for f in families if f not in makers]
    if unknown or not families:
        raise ValueError(f"unknown backbone families {unknown}: expected some of {', '.join(makers)}")
    return st.one_of(*(makers[f] for f in families))


_REFERENCE_CONFIGS: list = []


def references() -> list:
    """BARTs with 1, 2 and 3 layers per stack.  Specs for :data:`GENERIC` respect every width rule by
    construction; what is left, statements merging on shared sites, depends only on how many
    layers a stack has, and every config ``backbones()`` draws has 1 to 3."""
    if not _REFERENCE_CONFIGS:
        from transformers import BartConfig

        _REFERENCE_CONFIGS.extend(BartConfig(vocab_size=64, d_model=8, encoder_layers=n, decoder_layers=n,
                                      encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=16,
                                      decoder_ffn_dim=16, max_position_embeddings=64) for n in (1, 2, 3))
    return _REFERENCE_CONFIGS
