"""LLaVA-style composites (``LlavaForConditionalGeneration``): a vision tower, the model's own
multimodal projector, and a decoder-only language model.

transformers 5 lays the model out as::

    model.vision_tower            a CLIP or SigLIP vision model (vision_config.model_type)
    model.multi_modal_projector   linear_1 (vision width * feature layers -> d), act, linear_2 (d -> d)
    model.language_model          a LLaMA-layout model (embed_tokens, layers, norm)
    lm_head                       absent from named_parameters() when tied

Stacks: ``vision`` (laid out by :func:`vlsurgery.profiles.families.vision.vision_tower`) and
``decoder`` (by :func:`vlsurgery.profiles.families.llama.language_model`).  The image goes through
the tower; the hidden states of ``vision_feature_layer`` (-2 by default: the output of the
second-to-last layer) go through the projector and replace the image tokens of the text.

**Layers after ``vision_feature_layer``.**  The tower still runs them, but LLaVA never reads their
output, so a site there could never change the model nor learn anything.  The ``vision`` stack
therefore has only the layers LLaVA reads (23 of CLIP ViT-L/14's 24 with the default -2):
``vision[-1]`` is the last layer that matters, and ``vision.ffn: adapter`` puts no dead site
anywhere.  Their parameters are still counted (they are in the model), frozen.  The tower's
``post_layernorm`` is read only by its pooled output, which LLaVA ignores, so it is no norm of the
stack either (``train vision.layernorm`` leaves it frozen).

**The projector.**  The model has its own: ``train projector`` trains its parameters (no
vlsurgery projector is added, and declaring one is an error).  **Prefix tokens**: LLaVA already
places the image in the text, so no stack takes prompt or visual tokens at its input.
"""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

from vlsurgery.errors import BackboneError
from vlsurgery.profiles.families.llama import FAMILIES as LANGUAGE_FAMILIES, ROLES as LANGUAGE_ROLES
from vlsurgery.profiles.families.llama import head_dim, language_model
from vlsurgery.profiles.families.vision import TOWERS, VISION, field, vision_tower
from vlsurgery.profiles.profile import Family, Norm, Profile, Roles, ShapeTable

PROJECTOR = "model.multi_modal_projector"
LANGUAGES = tuple(t for family in LANGUAGE_FAMILIES for t in family.model_types)

#: The vocabulary: a vision tower and a decoder that takes no prefix tokens.
ROLES = Roles.of({stack: dict(subs) for stack, subs in VISION.stacks + LANGUAGE_ROLES.stacks})


def _sub(config, name: str):
    """A nested config as an object (a JSON preset holds it as a plain dict)."""
    value = field(config, name)
    if value is None:
        raise BackboneError(f"the llava config has no {name}")
    return SimpleNamespace(**value) if isinstance(value, dict) else value


def used_vision_layers(config, n_layers: int) -> int:
    """How many vision layers LLaVA reads: up to the deepest ``vision_feature_layer`` (an index into
    the tower's hidden states, which are the embeddings then every layer's output; -2 by default)."""
    chosen = field(config, "vision_feature_layer", -2)
    indices = [chosen] if isinstance(chosen, int) else list(chosen)
    deepest = max(i if i >= 0 else n_layers + 1 + i for i in indices)
    if not 0 <= deepest <= n_layers:
        raise BackboneError(f"vision_feature_layer {chosen} is outside the tower's {n_layers + 1} hidden states")
    return deepest


def make_profile(config) -> Profile:
    vision, text = _sub(config, "vision_config"), _sub(config, "text_config")
    if field(vision, "model_type") not in TOWERS:
        raise BackboneError(f"llava with a '{field(vision, 'model_type')}' vision tower is not supported: "
                            f"expected one of {', '.join(TOWERS)}")
    if getattr(text, "model_type", None) not in LANGUAGES:
        raise BackboneError(f"llava with a '{getattr(text, 'model_type', None)}' language model is not supported: "
                            f"expected one of {', '.join(LANGUAGES)}")
    table = ShapeTable()
    n_vision = field(vision, "num_hidden_layers")
    tower = vision_tower(table, vision, "model.vision_tower", used_layers=used_vision_layers(config, n_vision))
    chosen = field(config, "vision_feature_layer", -2)
    features = field(vision, "hidden_size") * (1 if isinstance(chosen, int) else len(chosen))
    d = text.hidden_size
    bias = bool(field(config, "multimodal_projector_bias", True))
    table.linear(f"{PROJECTOR}.linear_1", features, d, bias=bias)
    table.linear(f"{PROJECTOR}.linear_2", d, d, bias=bias)
    # LLaVA already puts the image among the text tokens: its decoder takes no prefix tokens
    decoder = tuple(replace(stack, takes_prefix=False) for stack in language_model(table, text, "model.language_model"))
    # LlavaConfig ties when either it or its text config says so (transformers 5's __post_init__).
    if not (field(config, "tie_word_embeddings", False) or getattr(text, "tie_word_embeddings", False)):
        table.add("lm_head.weight", text.vocab_size, d)
    return Profile(family="llava", model_type="llava", model_class="LlavaForConditionalGeneration", pre_norm=True,
                   d_model=d, attn_inner=text.num_attention_heads * head_dim(text), n_heads=text.num_attention_heads,
                   vocab_size=text.vocab_size, stacks=(tower,) + decoder,
                   norm=Norm("rmsnorm", False, getattr(text, "rms_norm_eps", 1e-6)),
                   token_embedding="model.language_model.embed_tokens.weight", leaves=("*",),
                   parameter_shapes=table.freeze(), own_projector=PROJECTOR)


FAMILIES = (Family("llava", ("llava",), ROLES, make_profile),)
