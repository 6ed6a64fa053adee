"""T5, T5 v1.1 / Flan-T5 (gated feed-forward) and mT5.

A block holds ``layer.0`` (self-attention), in the decoder ``layer.1`` (cross-attention), and a
feed-forward ``layer.<last>``; each wrapper applies its ``layer_norm`` *before* the sublayer (pre-LN)
and adds the residual after dropout.  So X of a sublayer is the un-normalised residual, the input of
``layer.<i>.layer_norm``, and H is the output of ``SelfAttention`` / ``EncDecAttention`` /
``DenseReluDense``.  Blocks are traced with ``layer.<i>.<child>`` as leaves so that the wrappers are
inlined and both points are visible in one graph.

Attention projections map d_model -> n_heads * d_kv, which need not equal d_model (t5-3b: 1024 ->
4096).  The feed-forward input is ``wi``, or ``wi_0`` and ``wi_1`` when the activation is gated
(``feed_forward_proj="gated-gelu"``); the DSL role ``in`` covers both.  Norms are T5LayerNorm: a
scale without bias or mean subtraction; there are no biases anywhere.  Only block 0 of each stack has
the relative position bias table.

Tied output embedding, as transformers 5 builds T5: ``T5Config`` turns a saved
``tie_word_embeddings: false`` into ``scale_decoder_outputs = False`` and always sets
``tie_word_embeddings = True``, so ``from_config`` always ties ``lm_head`` to ``shared`` (and
``save_pretrained`` then stores no ``lm_head``); ``from_pretrained`` unties it exactly when the
checkpoint stores its own ``lm_head.weight`` (the v1.1 and Flan-T5 checkpoints on the hub).  So a
config counts tied; a preset, which describes a hub checkpoint, counts ``lm_head`` when its JSON
says ``tie_word_embeddings: false``; and for a local directory the backbone loader looks in the
weight files (``Family.lm_head_from_checkpoint``).
"""

from __future__ import annotations

from vlsurgery.profiles.profile import ENCODER_DECODER, Family, Norm, Profile, ShapeTable, Stack, Sublayer


def untied_lm_head(config) -> bool:
    """Whether the model of this config has an ``lm_head`` separate from ``shared``: only when the
    config still says ``tie_word_embeddings: false``, which a preset's JSON does for an untied hub
    checkpoint and a transformers 5 ``T5Config`` never does (it forces True)."""
    return getattr(config, "tie_word_embeddings", True) is False


def _attention(name: str, index: int, module: str) -> Sublayer:
    base = f"layer.{index}"
    return Sublayer(name, f"{base}.layer_norm:in", f"{base}.{module}:out", f"{base}.layer_norm",
                    tuple((role, (f"{base}.{module}.{role}",)) for role in ("q", "k", "v", "o")), (base,))


def _ffn(index: int, gated: bool) -> Sublayer:
    base = f"layer.{index}"
    wi = ("wi_0", "wi_1") if gated else ("wi",)
    return Sublayer("ffn", f"{base}.layer_norm:in", f"{base}.DenseReluDense:out", f"{base}.layer_norm",
                    (("in", tuple(f"{base}.DenseReluDense.{w}" for w in wi)),
                     ("out", (f"{base}.DenseReluDense.wo",))), (base,))


def _make(config, *, family: str, model_class: str) -> Profile:
    d, d_ff, heads = config.d_model, config.d_ff, config.num_heads
    inner = heads * config.d_kv
    gated = bool(getattr(config, "is_gated_act", str(config.feed_forward_proj).startswith("gated-")))
    buckets = config.relative_attention_num_buckets
    n_dec = config.num_decoder_layers if config.num_decoder_layers is not None else config.num_layers

    table = ShapeTable()
    table.add("shared.weight", config.vocab_size, d)
    stacks = []
    for name, n_layers in (("encoder", config.num_layers), ("decoder", n_dec)):
        sublayers = [_attention("self_attn", 0, "SelfAttention")]
        if name == "decoder":
            sublayers.append(_attention("cross_attn", 1, "EncDecAttention"))
        sublayers.append(_ffn(len(sublayers), gated))
        for i in range(n_layers):
            block = f"{name}.block.{i}"
            for index, module in enumerate(("SelfAttention", "EncDecAttention")[: len(sublayers) - 1]):
                for role in ("q", "k", "v"):
                    table.linear(f"{block}.layer.{index}.{module}.{role}", d, inner, bias=False)
                table.linear(f"{block}.layer.{index}.{module}.o", inner, d, bias=False)
                if i == 0 and index == 0:
                    table.add(f"{block}.layer.0.SelfAttention.relative_attention_bias.weight", buckets, heads)
                table.norm(f"{block}.layer.{index}.layer_norm", d, bias=False)
            ff = f"{block}.layer.{len(sublayers) - 1}"
            for w in (("wi_0", "wi_1") if gated else ("wi",)):
                table.linear(f"{ff}.DenseReluDense.{w}", d, d_ff, bias=False)
            table.linear(f"{ff}.DenseReluDense.wo", d_ff, d, bias=False)
            table.norm(f"{ff}.layer_norm", d, bias=False)
        table.norm(f"{name}.final_layer_norm", d, bias=False)
        stacks.append(Stack(name, name, f"{name}.block", n_layers, d_ff, tuple(sublayers),
                            (f"{name}.final_layer_norm",), takes_prefix=name == "encoder"))
    if untied_lm_head(config):
        table.add("lm_head.weight", config.vocab_size, d)

    return Profile(family=family, model_type=config.model_type, model_class=model_class, pre_norm=True,
                   d_model=d, attn_inner=inner, n_heads=heads, vocab_size=config.vocab_size,
                   stacks=tuple(stacks), norm=Norm("rmsnorm", False, config.layer_norm_epsilon),
                   token_embedding="shared.weight", leaves=("layer.*.*",), parameter_shapes=table.freeze())


def _family(name: str, model_class: str) -> Family:
    return Family(name, (name,), ENCODER_DECODER, lambda config: _make(config, family=name, model_class=model_class),
                  lm_head_from_checkpoint=True)


T5 = _family("t5", "T5ForConditionalGeneration")
MT5 = _family("mt5", "MT5ForConditionalGeneration")

FAMILIES = (T5, MT5)
