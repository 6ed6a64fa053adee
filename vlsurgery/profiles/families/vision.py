"""ViT vision towers: CLIP vision (``CLIPVisionModel``) and SigLIP vision (``SiglipVisionModel``).

Both are pre-LN encoders whose layers (``encoder.layers.<i>``) read::

    x = x + self_attn(layer_norm1(x))        # q_proj, k_proj, v_proj, out_proj (all with bias)
    x = x + mlp(layer_norm2(x))              # mlp.fc1 -> activation -> mlp.fc2

so X of a sublayer is the input of its LayerNorm (the un-normalised residual stream) and H the
output of ``self_attn`` (element 0) or of ``mlp``, before the residual add.  Layers are traced with
their direct children as leaves.  The one stack is called ``vision``; its sublayers are
``self_attn`` (roles q k v o) and ``ffn`` (roles in = ``mlp.fc1``, out = ``mlp.fc2``).

Around the layers (what ``named_parameters()`` lists besides them):

- CLIP: ``embeddings.class_embedding`` (d), ``embeddings.patch_embedding`` (a Conv2d without bias),
  ``embeddings.position_embedding`` (one position per patch plus the class token), ``pre_layrnorm``
  (sic) before the layers and ``post_layernorm`` on the pooled class token;
- SigLIP: no class token, a patch Conv2d with bias, one position per patch, ``post_layernorm``
  and, when ``vision_use_head`` (the default), the attention-pooling ``head``: a probe token,
  an ``nn.MultiheadAttention`` (fused ``in_proj_weight``), a LayerNorm and an MLP.

A vision tower takes no token ids: it has no token embedding (``Profile.token_embedding`` is
empty), no vocabulary, no stack that takes prefix tokens, and it does not generate.
:func:`vision_tower` is also how a composite model (LLaVA) lays out the tower it holds.
"""

from __future__ import annotations

from vlsurgery.errors import BackboneError
from vlsurgery.profiles.profile import Family, Norm, Profile, Roles, ShapeTable, Stack, Sublayer

VISION = Roles.of({"vision": {"self_attn": ("q", "k", "v", "o"), "ffn": ("in", "out")}})

_ATTN = (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("o", "out_proj"))

#: transformers' defaults for the fields a vision config may leave out (JSON presets, hub configs).
_DEFAULTS = {"num_channels": 3, "vision_use_head": True}


def field(config, name: str, default=None):
    """A config field from a ``PretrainedConfig``, a namespace or a plain dict (nested configs of a
    JSON preset are dicts)."""
    if isinstance(config, dict):
        value = config.get(name, default)
    else:
        value = getattr(config, name, default)
    return _DEFAULTS.get(name, default) if value is None else value


def _join(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if prefix else path


def _sublayers() -> tuple[Sublayer, ...]:
    attention = Sublayer("self_attn", "layer_norm1:in", "self_attn:out", "layer_norm1",
                         tuple((role, (f"self_attn.{proj}",)) for role, proj in _ATTN), ("self_attn", "layer_norm1"))
    ffn = Sublayer("ffn", "layer_norm2:in", "mlp:out", "layer_norm2", (("in", ("mlp.fc1",)), ("out", ("mlp.fc2",))),
                   ("mlp", "layer_norm2"))
    return attention, ffn


def vision_tower(table: ShapeTable, config, prefix: str, *, used_layers: int | None = None) -> Stack:
    """Add the base parameters of the vision tower of ``config`` (CLIP or SigLIP vision, by its
    ``model_type``) to ``table`` under the module path ``prefix`` ("" for the model itself), in
    ``named_parameters()`` order, and return its ``vision`` stack with absolute paths.

    ``used_layers``: given by a composite model that reads the tower's hidden states (LLaVA's
    ``vision_feature_layer``): how many layers the stack exposes to addresses, and the tower's
    pooled output (``post_layernorm``) is then no norm of the stack.  The parameters of every layer
    are listed all the same.
    """
    kind = field(config, "model_type")
    if kind not in TOWERS:
        raise BackboneError(f"no vision tower layout for model type '{kind}' (known: {', '.join(TOWERS)})")
    clip = kind == "clip_vision_model"
    d, d_ff = field(config, "hidden_size"), field(config, "intermediate_size")
    n_layers = field(config, "num_hidden_layers")
    channels, patch = field(config, "num_channels"), field(config, "patch_size")
    patches = (field(config, "image_size") // patch) ** 2

    emb = _join(prefix, "embeddings")
    if clip:
        table.add(f"{emb}.class_embedding", d)
    table.add(f"{emb}.patch_embedding.weight", d, channels, patch, patch)
    if not clip:
        table.add(f"{emb}.patch_embedding.bias", d)
    table.add(f"{emb}.position_embedding.weight", patches + (1 if clip else 0), d)
    norms = [_join(prefix, "pre_layrnorm")] if clip else []
    if clip:
        table.norm(norms[0], d)
    root = _join(prefix, "encoder")
    for i in range(n_layers):
        layer = f"{root}.layers.{i}"
        if not clip:  # SigLIP declares its norms first: the table keeps named_parameters() order
            table.norm(f"{layer}.layer_norm1", d)
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            table.linear(f"{layer}.self_attn.{proj}", d, d)
        if clip:
            table.norm(f"{layer}.layer_norm1", d)
        else:
            table.norm(f"{layer}.layer_norm2", d)
        table.linear(f"{layer}.mlp.fc1", d, d_ff)
        table.linear(f"{layer}.mlp.fc2", d_ff, d)
        if clip:
            table.norm(f"{layer}.layer_norm2", d)
    post = _join(prefix, "post_layernorm")
    table.norm(post, d)
    if used_layers is None:
        norms.append(post)  # read by the pooled output only, which a composite model does not use
    if not clip and field(config, "vision_use_head"):
        head = _join(prefix, "head")
        table.add(f"{head}.probe", 1, 1, d)
        table.add(f"{head}.attention.in_proj_weight", 3 * d, d)
        table.add(f"{head}.attention.in_proj_bias", 3 * d)
        table.linear(f"{head}.attention.out_proj", d, d)
        table.norm(f"{head}.layernorm", d)
        table.linear(f"{head}.mlp.fc1", d, d_ff)
        table.linear(f"{head}.mlp.fc2", d_ff, d)
    layers = n_layers if used_layers is None else used_layers
    return Stack("vision", root, f"{root}.layers", layers, d_ff, _sublayers(), tuple(norms), takes_prefix=False,
                 d_model=d)


def _make(config, *, family: str, model_class: str) -> Profile:
    table = ShapeTable()
    stack = vision_tower(table, config, "")
    d, clip = field(config, "hidden_size"), field(config, "model_type") == "clip_vision_model"
    eps = field(config, "layer_norm_eps", 1e-5 if clip else 1e-6)
    return Profile(family=family, model_type=field(config, "model_type"), model_class=model_class, pre_norm=True,
                   d_model=d, attn_inner=d, n_heads=field(config, "num_attention_heads"), vocab_size=0,
                   stacks=(stack,), norm=Norm("layernorm", True, eps),
                   token_embedding="", leaves=("*",), parameter_shapes=table.freeze())


TOWERS = {"clip_vision_model": ("clip-vision", "CLIPVisionModel"),
          "siglip_vision_model": ("siglip-vision", "SiglipVisionModel")}


def _family(model_type: str) -> Family:
    name, model_class = TOWERS[model_type]
    return Family(name, (model_type,), VISION, lambda config: _make(config, family=name, model_class=model_class))


FAMILIES = tuple(_family(model_type) for model_type in TOWERS)
