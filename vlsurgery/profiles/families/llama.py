"""Decoder-only language models in the LLaMA layout: Llama, Mistral, Qwen2, Qwen3.

transformers 5 builds all four the same way (``modeling_llama.py`` and its copies)::

    model.embed_tokens                      (vocab, d)
    model.layers.<i>.input_layernorm        RMSNorm, scale only
    model.layers.<i>.self_attn.{q,k,v,o}_proj
    model.layers.<i>.post_attention_layernorm
    model.layers.<i>.mlp.{gate,up,down}_proj   down(silu(gate(x)) * up(x))
    model.norm                              the final RMSNorm
    lm_head                                 absent from ``named_parameters()`` when tied

A layer is pre-norm: ``h = h + self_attn(input_layernorm(h)); h = h + mlp(post_attention_layernorm(h))``,
so X of a sublayer is the un-normalised residual, the input of its norm, and H is the output of
``self_attn`` (element 0 of its tuple) or of ``mlp``, before the residual add.  The rotary
``position_embeddings`` are computed once by ``model`` and passed to every layer; the layer's
direct children are the tracing leaves, so attention (rotary, cache, GQA) stays one opaque call.

Attention is grouped-query: q maps d -> n_heads * head_dim, k and v map d -> n_kv_heads * head_dim
(narrower when n_kv_heads < n_heads), o maps n_heads * head_dim -> d.  ``head_dim`` is the
config's own when it has one (Qwen3: 128 whatever d is), else d / n_heads.  The members differ only
in small things, all counted here:

- Llama: ``attention_bias`` puts a bias on q, k, v and o; ``mlp_bias`` on gate, up and down;
- Mistral: no biases;
- Qwen2: q, k and v always have a bias, o never;
- Qwen3: ``attention_bias`` as Llama, plus ``self_attn.q_norm`` / ``k_norm`` (RMSNorm over head_dim).

Roles: the feed-forward's projections are ``gate``, ``up`` and ``down``; ``in`` names every input
projection (gate and up) and ``out`` the output one (down), as for gated T5, so that a design
written for T5's ``ffn.in`` transfers.  ``in`` and ``gate``/``up`` name the same linears: a site
is one place, whichever role reached it (its path uses the first role, ``ffn.gate``).

Prefix tokens (prompts, visual tokens) go to the decoder's own input: the model has one stack.
"""

from __future__ import annotations

from vlsurgery.profiles.profile import Family, Norm, Profile, Roles, ShapeTable, Stack, Sublayer

ATTENTION = (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("o", "o_proj"))
MLP = (("gate", "gate_proj"), ("up", "up_proj"), ("down", "down_proj"))

ROLES = Roles.of({"decoder": {"self_attn": ("q", "k", "v", "o"), "ffn": ("gate", "up", "down", "in", "out")}},
                 inputs=("decoder",))

#: Which linears carry a bias, per model type, given the config (see the module docstring).
_BIASES = {
    "llama": lambda c: (("q_proj", "k_proj", "v_proj", "o_proj") if getattr(c, "attention_bias", False) else ())
    + (("gate_proj", "up_proj", "down_proj") if getattr(c, "mlp_bias", False) else ()),
    "mistral": lambda c: (),
    "qwen2": lambda c: ("q_proj", "k_proj", "v_proj"),
    "qwen3": lambda c: ("q_proj", "k_proj", "v_proj", "o_proj") if getattr(c, "attention_bias", False) else (),
}
_QK_NORM = ("qwen3",)


def head_dim(config) -> int:
    """The width of one attention head: the config's ``head_dim`` when set, else d / n_heads."""
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def kv_heads(config) -> int:
    return getattr(config, "num_key_value_heads", None) or config.num_attention_heads


def sublayers() -> tuple[Sublayer, ...]:
    """The two sublayers of a layer, paths relative to the layer."""
    attn = Sublayer("self_attn", "input_layernorm:in", "self_attn:out", "input_layernorm",
                    tuple((role, (f"self_attn.{proj}",)) for role, proj in ATTENTION),
                    ("self_attn", "input_layernorm"))
    mlp = tuple((role, (f"mlp.{proj}",)) for role, proj in MLP)
    ffn = Sublayer("ffn", "post_attention_layernorm:in", "mlp:out", "post_attention_layernorm",
                   mlp + (("in", ("mlp.gate_proj", "mlp.up_proj")), ("out", ("mlp.down_proj",))),
                   ("mlp", "post_attention_layernorm"))
    return attn, ffn


def language_model(table: ShapeTable, config, prefix: str) -> tuple[Stack, ...]:
    """Add a LLaMA-layout language model's base parameters to ``table`` and return its stacks.

    ``config``: the text config (``model_type`` one of llama, mistral, qwen2, qwen3; a
    ``SimpleNamespace`` with the same fields works).  ``prefix``: the module path of the model that
    holds ``embed_tokens``, ``layers`` and ``norm`` ("model" in ``LlamaForCausalLM``,
    "model.language_model" in LLaVA).  Adds, in ``named_parameters()`` order, the token embedding
    ``<prefix>.embed_tokens.weight``, every layer's parameters and the final ``<prefix>.norm.weight``;
    NOT ``lm_head`` (the caller adds it when it is untied).  Returns one :class:`Stack`, ``decoder``,
    whose paths are absolute (``<prefix>.layers``) and which takes prefix tokens at its input.
    """
    d, d_ff, n_layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    hd, heads, kv = head_dim(config), config.num_attention_heads, kv_heads(config)
    biased = set(_BIASES[config.model_type](config))
    widths = {"q_proj": (d, heads * hd), "k_proj": (d, kv * hd), "v_proj": (d, kv * hd), "o_proj": (heads * hd, d)}

    table.add(f"{prefix}.embed_tokens.weight", config.vocab_size, d)
    for i in range(n_layers):
        layer = f"{prefix}.layers.{i}"
        for _, proj in ATTENTION:
            table.linear(f"{layer}.self_attn.{proj}", *widths[proj], bias=proj in biased)
        if config.model_type in _QK_NORM:
            table.norm(f"{layer}.self_attn.q_norm", hd, bias=False)
            table.norm(f"{layer}.self_attn.k_norm", hd, bias=False)
        table.linear(f"{layer}.mlp.gate_proj", d, d_ff, bias="gate_proj" in biased)
        table.linear(f"{layer}.mlp.up_proj", d, d_ff, bias="up_proj" in biased)
        table.linear(f"{layer}.mlp.down_proj", d_ff, d, bias="down_proj" in biased)
        table.norm(f"{layer}.input_layernorm", d, bias=False)
        table.norm(f"{layer}.post_attention_layernorm", d, bias=False)
    table.norm(f"{prefix}.norm", d, bias=False)
    return (Stack("decoder", prefix, f"{prefix}.layers", n_layers, d_ff, sublayers(), (f"{prefix}.norm",),
                  takes_prefix=True),)


def _make(config, *, model_class: str) -> Profile:
    d = config.hidden_size
    table = ShapeTable()
    stacks = language_model(table, config, "model")
    # transformers 5 drops a tied lm_head from named_parameters(); the four configs default to untied.
    if not getattr(config, "tie_word_embeddings", False):
        table.add("lm_head.weight", config.vocab_size, d)
    return Profile(family=config.model_type, model_type=config.model_type, model_class=model_class, pre_norm=True,
                   d_model=d, attn_inner=config.num_attention_heads * head_dim(config),
                   n_heads=config.num_attention_heads, vocab_size=config.vocab_size, stacks=stacks,
                   norm=Norm("rmsnorm", False, getattr(config, "rms_norm_eps", 1e-6)),
                   token_embedding="model.embed_tokens.weight", leaves=("*",), parameter_shapes=table.freeze())


def _family(name: str, model_class: str) -> Family:
    return Family(name, (name,), ROLES, lambda config: _make(config, model_class=model_class))


LLAMA = _family("llama", "LlamaForCausalLM")
MISTRAL = _family("mistral", "MistralForCausalLM")
QWEN2 = _family("qwen2", "Qwen2ForCausalLM")
QWEN3 = _family("qwen3", "Qwen3ForCausalLM")

FAMILIES = (LLAMA, MISTRAL, QWEN2, QWEN3)
