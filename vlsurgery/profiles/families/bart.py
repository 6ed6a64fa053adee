"""BART and the families that share its layer layout: mBART, Marian, Pegasus.

Every layer has ``self_attn`` (+ ``encoder_attn`` in the decoder), each followed by its own
LayerNorm, and a feed-forward that is no module at all: ``fc1`` -> activation -> ``fc2`` inside
the layer's forward.  The families differ in where the norms sit:

- BART, Marian: post-LN.  X of an attention sublayer is the attention module's own input (the
  residual stream); X of the feed-forward is ``fc1``'s input.
- mBART, Pegasus: pre-LN.  X is the input of the sublayer's LayerNorm (the un-normalised residual),
  and the stack ends with a final ``layer_norm``.

H is always the attention module's output (element 0) or ``fc2``'s output, before dropout and the
residual add.  Layers are traced with their direct children as leaves.
"""

from __future__ import annotations

from vlsurgery.profiles.profile import ENCODER_DECODER, Family, Norm, Profile, ShapeTable, Stack, Sublayer

_ATTN = (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("o", "out_proj"))


def _attention(name: str, module: str, norm: str, pre_norm: bool) -> Sublayer:
    x = f"{norm}:in" if pre_norm else f"{module}:in"
    return Sublayer(name, x, f"{module}:out", norm,
                    tuple((role, (f"{module}.{proj}",)) for role, proj in _ATTN), (module, norm))


def _ffn(pre_norm: bool) -> Sublayer:
    x = "final_layer_norm:in" if pre_norm else "fc1:in"
    return Sublayer("ffn", x, "fc2:out", "final_layer_norm", (("in", ("fc1",)), ("out", ("fc2",))),
                    ("fc1", "fc2", "final_layer_norm"))


def _make(config, *, family: str, model_class: str, pre_norm: bool, embedding_norm: bool,
          final_norm: bool, learned_positions: bool) -> Profile:
    d = config.d_model
    tied = bool(getattr(config, "tie_word_embeddings", True))
    # Marian can keep separate source and target vocabularies (no ``model.shared`` then).
    shared = bool(getattr(config, "share_encoder_decoder_embeddings", True))
    vocab = config.vocab_size
    dec_vocab = getattr(config, "decoder_vocab_size", None) or vocab
    positions = config.max_position_embeddings + (2 if learned_positions else 0)

    table = ShapeTable()
    if shared:
        table.add("model.shared.weight", vocab, d)
    stacks = []
    for name, n_layers, d_ff in (("encoder", config.encoder_layers, config.encoder_ffn_dim),
                                 ("decoder", config.decoder_layers, config.decoder_ffn_dim)):
        root = f"model.{name}"
        if not (shared and tied):
            table.add(f"{root}.embed_tokens.weight", vocab if name == "encoder" else dec_vocab, d)
        table.add(f"{root}.embed_positions.weight", positions, d)
        sublayers = [_attention("self_attn", "self_attn", "self_attn_layer_norm", pre_norm)]
        if name == "decoder":
            sublayers.append(_attention("cross_attn", "encoder_attn", "encoder_attn_layer_norm", pre_norm))
        sublayers.append(_ffn(pre_norm))
        for i in range(n_layers):
            layer = f"{root}.layers.{i}"
            for module in ("self_attn",) + (("encoder_attn",) if name == "decoder" else ()):
                for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
                    table.linear(f"{layer}.{module}.{proj}", d, d)
                table.norm(f"{layer}.{module}_layer_norm", d)
            table.linear(f"{layer}.fc1", d, d_ff)
            table.linear(f"{layer}.fc2", d_ff, d)
            table.norm(f"{layer}.final_layer_norm", d)
        norms = []
        if embedding_norm:
            norms.append(f"{root}.layernorm_embedding")
        if final_norm:
            norms.append(f"{root}.layer_norm")
        for norm in norms:
            table.norm(norm, d)
        stacks.append(Stack(name, root, f"{root}.layers", n_layers, d_ff, tuple(sublayers), tuple(norms),
                            takes_prefix=name == "encoder"))
    if not tied:
        table.add("lm_head.weight", dec_vocab, d)

    embedding = "model.shared.weight" if shared else "model.encoder.embed_tokens.weight"
    return Profile(family=family, model_type=config.model_type, model_class=model_class, pre_norm=pre_norm,
                   d_model=d, attn_inner=d, n_heads=config.encoder_attention_heads, vocab_size=vocab,
                   stacks=tuple(stacks), norm=Norm("layernorm", True, 1e-5), token_embedding=embedding,
                   leaves=("*",), parameter_shapes=table.freeze())


def _family(name, model_types, model_class, **layout) -> Family:
    return Family(name, model_types, ENCODER_DECODER, lambda config: _make(config, family=name, model_class=model_class, **layout))


BART = _family("bart", ("bart",), "BartForConditionalGeneration",
               pre_norm=False, embedding_norm=True, final_norm=False, learned_positions=True)
MBART = _family("mbart", ("mbart",), "MBartForConditionalGeneration",
                pre_norm=True, embedding_norm=True, final_norm=True, learned_positions=True)
MARIAN = _family("marian", ("marian",), "MarianMTModel",
                 pre_norm=False, embedding_norm=False, final_norm=False, learned_positions=False)
PEGASUS = _family("pegasus", ("pegasus",), "PegasusForConditionalGeneration",
                  pre_norm=True, embedding_norm=False, final_norm=True, learned_positions=False)

FAMILIES = (BART, MBART, MARIAN, PEGASUS)
