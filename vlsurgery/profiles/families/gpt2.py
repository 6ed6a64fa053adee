"""GPT-2 (``GPT2LMHeadModel``): a decoder-only, pre-LN transformer built from transformers' Conv1D.

Module tree (transformers 5)::

    transformer.wte, transformer.wpe               token and learned position embeddings
    transformer.h.<i>                              GPT2Block
        ln_1 -> attn (c_attn, c_proj) -> + residual
        ln_2 -> mlp (c_fc, act, c_proj) -> + residual
    transformer.ln_f                               final LayerNorm
    lm_head                                        tied to wte (unless tie_word_embeddings=false)

Two things set GPT-2 apart from the other families:

- **Conv1D**: every projection is a ``Conv1D``, a Linear whose weight is stored transposed,
  ``(in, out)``.  The profile records those paths (``Profile.transposed_weights``), so widths and
  counts are read the right way round; the compiler and merging handle both layouts.
- **The fused c_attn**: one Conv1D computes q, k and v at once, ``c_attn(x) = [q | k | v]`` with
  ``d`` columns each (split in that order by ``GPT2Attention``).  The roles ``q``, ``k``, ``v``
  are column slices of c_attn's output, ``[0, d)``, ``[d, 2d)``, ``[2d, 3d)``
  (``Sublayer.columns``): a site on ``q`` reads c_attn's input x and changes only q's columns, so
  LoRA on ``q`` has ``r (d + d)`` parameters and ``decoder.self_attn.{q,v}: lora`` puts two
  independent updates on one c_attn.  The role ``qkv`` is the whole fused projection (``3d``
  output columns); ``o`` is ``attn.c_proj``; the feed-forward's ``in`` and ``out`` are ``mlp.c_fc``
  and ``mlp.c_proj``.

X and H as everywhere: X is the un-normalised residual input of the sublayer (``ln_1:in``,
``ln_2:in``) and H its output before the residual add (``attn:out``, element 0 of the attention's
tuple, and ``mlp:out``; both after their residual dropout).  Layers are traced with their direct
children as leaves.  Cross-attention (``add_cross_attention``) is not supported.
"""

from __future__ import annotations

from vlsurgery.errors import BackboneError
from vlsurgery.profiles.profile import Family, Norm, Profile, Roles, ShapeTable, Stack, Sublayer

ROLES = Roles.of({"decoder": {"self_attn": ("q", "k", "v", "o", "qkv"), "ffn": ("in", "out")}},
                 inputs=("decoder",))

_FUSED = "attn.c_attn"


def _width(config, name: str, alias: str):
    """A config field under GPT-2's own name (``n_embd``) or the generic one (``hidden_size``):
    preset JSON is read without transformers' attribute map."""
    value = getattr(config, name, None)
    return value if value is not None else getattr(config, alias)


def make_profile(config) -> Profile:
    if getattr(config, "add_cross_attention", False):
        raise BackboneError("GPT-2 with add_cross_attention=true is not supported: vlsurgery profiles the "
                            "decoder-only GPT2LMHeadModel")
    d = _width(config, "n_embd", "hidden_size")
    n_layers = _width(config, "n_layer", "num_hidden_layers")
    n_heads = _width(config, "n_head", "num_attention_heads")
    positions = _width(config, "n_positions", "max_position_embeddings")
    d_ff = getattr(config, "n_inner", None) or 4 * d
    tied = bool(getattr(config, "tie_word_embeddings", True))

    table = ShapeTable()
    table.add("transformer.wte.weight", config.vocab_size, d)
    table.add("transformer.wpe.weight", positions, d)
    for i in range(n_layers):
        layer = f"transformer.h.{i}"
        table.norm(f"{layer}.ln_1", d)
        table.conv1d(f"{layer}.{_FUSED}", d, 3 * d)
        table.conv1d(f"{layer}.attn.c_proj", d, d)
        table.norm(f"{layer}.ln_2", d)
        table.conv1d(f"{layer}.mlp.c_fc", d, d_ff)
        table.conv1d(f"{layer}.mlp.c_proj", d_ff, d)
    table.norm("transformer.ln_f", d)
    if not tied:
        table.add("lm_head.weight", config.vocab_size, d)

    attention = Sublayer(
        "self_attn", "ln_1:in", "attn:out", "ln_1",
        (("q", (_FUSED,)), ("k", (_FUSED,)), ("v", (_FUSED,)), ("o", ("attn.c_proj",)), ("qkv", (_FUSED,))),
        ("attn", "ln_1"),
        columns=(("q", (0, d)), ("k", (d, 2 * d)), ("v", (2 * d, 3 * d))))
    ffn = Sublayer("ffn", "ln_2:in", "mlp:out", "ln_2", (("in", ("mlp.c_fc",)), ("out", ("mlp.c_proj",))),
                   ("mlp", "ln_2"))
    stack = Stack("decoder", "transformer", "transformer.h", n_layers, d_ff, (attention, ffn),
                  norms=("transformer.ln_f",), takes_prefix=True)
    return Profile(family="gpt2", model_type="gpt2", model_class="GPT2LMHeadModel", pre_norm=True, d_model=d,
                   attn_inner=d, n_heads=n_heads, vocab_size=config.vocab_size, stacks=(stack,),
                   norm=Norm("layernorm", True, getattr(config, "layer_norm_epsilon", 1e-5)),
                   token_embedding="transformer.wte.weight", leaves=("*",), parameter_shapes=table.freeze(),
                   transposed_weights=tuple(table.transposed))


FAMILIES = (Family("gpt2", ("gpt2",), ROLES, make_profile),)
