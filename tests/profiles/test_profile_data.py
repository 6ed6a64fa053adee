"""Profiles against real module trees: parameter tables, module paths, dataflow points, leaves."""

from __future__ import annotations

import json
import time

import pytest
import torch
from torch import nn

from helpers import build_cpu, build_meta, family_configs
from vlsurgery.errors import BackboneError
from vlsurgery.profiles import load_backbone, preset_config, preset_names, profile_of
from vlsurgery.profiles.backbone import PRESETS_DIR, preset_profile
from vlsurgery.profiles.families.t5 import untied_lm_head

def decoder_only_configs():
    """(id, config) of the LLaMA layout: GQA everywhere; biases, q/k norms and tying as each type has them."""
    from transformers import AutoConfig

    small = dict(vocab_size=96, hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2)
    return [(f"{t}{'-' + '-'.join(extra) if extra else ''}", AutoConfig.for_model(t, **small, **extra))
            for t, extra in [("llama", {}), ("llama", {"attention_bias": True, "mlp_bias": True, "tie_word_embeddings": True}),
                             ("mistral", {"head_dim": 8}), ("qwen2", {}), ("qwen2", {"tie_word_embeddings": True}),
                             ("qwen3", {}), ("qwen3", {"attention_bias": True, "head_dim": 6})]]


CONFIGS = family_configs() + decoder_only_configs()
IDS = [name for name, _ in CONFIGS]


@pytest.mark.parametrize("config", [c for _, c in CONFIGS], ids=IDS)
def test_parameter_table_is_named_parameters(config):
    """Names and shapes, tied tensors once, buffers excluded: exactly named_parameters()."""
    profile = profile_of(config)
    model = build_meta(config, profile)
    assert {n: tuple(p.shape) for n, p in model.named_parameters()} == profile.parameters
    assert profile.num_parameters == sum(p.numel() for p in model.parameters())
    assert "final_logits_bias" not in profile.parameters


@pytest.mark.parametrize("name", ["tiny-bart", "tiny-t5", "tiny-t5-gated", "t5-small", "bart-base", "tiny-llama",
                                  "tiny-qwen2", "llama-3.2-1b", "qwen2.5-0.5b", "mistral-7b", "tiny-clip-vision",
                                  "tiny-siglip-vision", "tiny-llava", "clip-vit-b-32", "clip-vit-l-14",
                                  "siglip-base-patch16-224", "llava-1.5-7b"])
def test_preset_table_is_named_parameters(name):
    config = preset_config(name)
    profile = profile_of(config)
    assert profile.parameters == preset_profile(name).parameters  # JSON-only profile == config profile
    model = build_meta(config, profile)
    assert {n: tuple(p.shape) for n, p in model.named_parameters()} == profile.parameters


# Published parameter counts of the checkpoints (as loaded by from_pretrained: the vision tower alone for CLIP).
KNOWN = {"bart-base": 139_420_416, "bart-large": 406_291_456, "t5-small": 60_506_624, "t5-base": 222_903_552,
         "t5-large": 737_668_096, "t5-3b": 2_851_598_336, "flan-t5-base": 247_577_856,
         "flan-t5-small": 76_961_152, "flan-t5-large": 783_150_080,
         "llama-3.2-1b": 1_235_814_400, "qwen2.5-0.5b": 494_032_768, "mistral-7b": 7_241_732_096,
         "clip-vit-b-32": 87_456_000, "clip-vit-l-14": 303_179_776, "llava-1.5-7b": 7_063_427_072}


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_preset_counts_match_published_checkpoints(name):
    assert preset_profile(name).num_parameters == KNOWN[name]


def test_untied_t5_checkpoint_counts_its_lm_head(tmp_path):
    """A v1.1 checkpoint with its own lm_head: from_pretrained unties it, and so does the count (read
    from the checkpoint's files: transformers 5's T5Config always says tie_word_embeddings=True)."""
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(vocab_size=64, d_model=8, d_kv=4, d_ff=16, num_layers=1, num_heads=2,
                      relative_attention_num_buckets=4, feed_forward_proj="gated-gelu", tie_word_embeddings=False)
    model = T5ForConditionalGeneration(config)
    model.lm_head.weight = nn.Parameter(torch.randn(64, 8))
    model.save_pretrained(tmp_path)
    loaded = T5ForConditionalGeneration.from_pretrained(tmp_path)
    backbone = load_backbone(str(tmp_path))
    assert not untied_lm_head(backbone.config) and "lm_head.weight" in backbone.profile.parameters
    assert backbone.profile.num_parameters == sum(p.numel() for p in loaded.parameters())
    assert backbone.profile.parameters == {n: tuple(p.shape) for n, p in loaded.named_parameters()}


@pytest.mark.parametrize("config", [c for _, c in CONFIGS], ids=IDS)
def test_paths_and_points_name_real_modules(config):
    profile = profile_of(config)
    model = build_meta(config, profile)
    modules = dict(model.named_modules())
    assert profile.token_embedding in dict(model.named_parameters())
    norm_types = (nn.LayerNorm,) if profile.norm.kind == "layernorm" else ()
    for stack in profile.stacks:
        assert stack.root in modules and len(modules[stack.layers_path]) == stack.n_layers
        for norm in stack.norms:
            assert norm in modules
        for i in range(stack.n_layers):
            layer = modules[stack.layer_module(i)]
            inside = dict(layer.named_modules())
            for sub in stack.sublayers:
                for point in (sub.x_point, sub.h_point):
                    module, _, side = point.rpartition(":")
                    assert side in ("in", "out") and module in inside, point
                    assert profile.is_leaf(module), f"{point} must be a tracing leaf"
                assert sub.norm in inside
                if norm_types:
                    assert isinstance(inside[sub.norm], norm_types)
                else:
                    assert type(inside[sub.norm]).__name__.endswith(("LayerNorm", "RMSNorm"))
                for role, linears in sub.projections:
                    for linear in linears:
                        assert isinstance(inside[linear], nn.Linear), (role, linear)
                for owner in sub.owns:
                    assert owner in inside


def test_tracing_leaves():
    bart = preset_profile("tiny-bart")
    assert bart.is_leaf("self_attn") and bart.is_leaf("fc1") and not bart.is_leaf("self_attn.q_proj")
    t5 = preset_profile("tiny-t5")
    assert t5.is_leaf("layer.0.SelfAttention") and t5.is_leaf("layer.1.layer_norm")
    assert not t5.is_leaf("layer.0") and not t5.is_leaf("layer.0.SelfAttention.q")


def _capture(layer, point, store, key):
    module_name, _, side = point.rpartition(":")
    module = layer.get_submodule(module_name)
    if side == "in":
        def pre(mod, args, kwargs):
            store[key] = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        return module.register_forward_pre_hook(pre, with_kwargs=True)

    def post(mod, args, output):
        store[key] = output[0] if isinstance(output, tuple) else output
    return module.register_forward_hook(post)


def _assert_points_are_the_residual_stream(model, profile, inputs):
    """Run ``model(**inputs)`` and check that X and H are where the paper says: the residual add of
    sublayer j gives X of sublayer j+1 (pre-LN: X + H; post-LN: norm(X + H)), and the last one gives
    the layer's output."""
    store, handles = {}, []
    for stack in profile.stacks:
        for i in range(stack.n_layers):
            layer = model.get_submodule(stack.layer_module(i))
            for sub in stack.sublayers:
                handles.append(_capture(layer, sub.x_point, store, (stack.name, i, sub.name, "x")))
                handles.append(_capture(layer, sub.h_point, store, (stack.name, i, sub.name, "h")))
            # text layers return a tuple, vision layers a tensor
            handles.append(layer.register_forward_hook(
                lambda mod, a, out, key=(stack.name, i): store.__setitem__(key, out[0] if isinstance(out, tuple) else out)))
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        for h in handles:
            h.remove()
    for stack in profile.stacks:
        for i in range(stack.n_layers):
            layer = model.get_submodule(stack.layer_module(i))
            subs = stack.sublayers
            for j, sub in enumerate(subs):
                x, h = store[(stack.name, i, sub.name, "x")], store[(stack.name, i, sub.name, "h")]
                after = x + h if profile.pre_norm else layer.get_submodule(sub.norm)(x + h)
                nxt = store[(stack.name, i, subs[j + 1].name, "x")] if j + 1 < len(subs) else store[(stack.name, i)]
                torch.testing.assert_close(after, nxt, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("config", [c for _, c in CONFIGS], ids=IDS)
def test_points_are_the_residual_stream(config):
    profile = profile_of(config)
    inputs = {"input_ids": torch.tensor([[5, 6, 7, 8, 9, 2]])}
    if profile.stack("encoder") is not None:  # encoder-decoder
        inputs["decoder_input_ids"] = torch.tensor([[2, 5, 6, 7]])
    _assert_points_are_the_residual_stream(build_cpu(config, profile), profile, inputs)


def test_unknown_family_lists_supported():
    from transformers import ElectraConfig

    with pytest.raises(BackboneError) as e:
        profile_of(ElectraConfig(num_hidden_layers=1))
    assert "'electra'" in str(e.value) and all(f in str(e.value) for f in ("bart", "t5", "gpt2"))


def test_backbone_forms(tmp_path):
    from transformers import BartForConditionalGeneration

    preset = load_backbone("tiny-bart")
    assert preset.profile.family == "bart" and preset.config.d_model == 32
    assert load_backbone("facebook/bart-base").profile.d_model == 768       # hub name of a preset: offline
    config = preset_config("tiny-t5")
    assert load_backbone(config).profile is profile_of(config)
    config.save_pretrained(tmp_path)
    assert load_backbone(str(tmp_path)).profile.parameters == preset_profile("tiny-t5").parameters
    model = BartForConditionalGeneration(preset_config("tiny-bart"))
    assert load_backbone(model).model is model
    for bad in ("./no/such/dir", "no-such-org/no-such-model-xyz", "bart-bse"):
        with pytest.raises(BackboneError):
            load_backbone(bad)
    with pytest.raises(BackboneError) as e:
        load_backbone("bart-bse")
    assert "bart-base" in str(e.value)
    with pytest.raises(BackboneError):
        load_backbone(None)


def test_presets_are_complete_json():
    for name in preset_names():
        data = json.loads((PRESETS_DIR / f"{name}.json").read_text())
        assert {"description", "config"} <= set(data)
        needed = {"model_type"}
        if preset_profile(name).stack("encoder") is not None:  # an encoder-decoder starts its decoder with a token
            needed |= {"pad_token_id", "decoder_start_token_id", "d_model"}
        assert needed <= set(data["config"]), name
    assert {"bart-base", "bart-large", "t5-small", "t5-base", "t5-large", "t5-3b", "flan-t5-base", "tiny-bart",
            "tiny-t5", "tiny-t5-gated"} <= set(preset_names())


def test_profile_is_fast_for_t5_3b():
    start = time.perf_counter()
    profile = profile_of(preset_config("t5-3b"))
    assert profile.attn_inner == 4096 and profile.num_parameters == KNOWN["t5-3b"]
    assert time.perf_counter() - start < 1.0


# -- vision towers (CLIP, SigLIP) and LLaVA composites: no token ids, so their own forward passes


def vision_configs():
    """(id, config) of small vision towers and LLaVA models (CLIP or SigLIP tower, Llama or Qwen2 text)."""
    from transformers import AutoConfig, LlavaConfig

    tower = dict(hidden_size=16, intermediate_size=24, num_hidden_layers=3, num_attention_heads=2, image_size=32,
                 patch_size=8)
    text = dict(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2)
    clip = AutoConfig.for_model("clip_vision_model", **tower)
    siglip = AutoConfig.for_model("siglip_vision_model", **tower)
    return [("clip-vision", clip), ("siglip-vision", siglip),
            ("siglip-vision-headless", AutoConfig.for_model("siglip_vision_model", **tower, vision_use_head=False)),
            ("llava-clip-llama", LlavaConfig(vision_config=clip.to_dict(), image_token_id=95,
                                             text_config=AutoConfig.for_model("llama", **text).to_dict())),
            ("llava-siglip-qwen2-tied-two-feature-layers", LlavaConfig(
                vision_config=siglip.to_dict(), image_token_id=95, vision_feature_layer=[-3, -1],
                vision_feature_select_strategy="full",  # SigLIP has no class token to drop
                text_config=AutoConfig.for_model("qwen2", **text, tie_word_embeddings=True).to_dict()))]


VISION = vision_configs()
VISION_IDS = [name for name, _ in VISION]


def _pixels_and_ids(config):
    """Inputs for a tower (pixel_values) or a LLaVA model (+ text with one image's placeholder tokens)."""
    vision = getattr(config, "vision_config", config)
    pixels = torch.randn(1, 3, vision.image_size, vision.image_size, generator=torch.Generator().manual_seed(0))
    if vision is config:
        return {"pixel_values": pixels}
    patches = (vision.image_size // vision.patch_size) ** 2
    return {"pixel_values": pixels, "input_ids": torch.tensor([[5, 6] + [config.image_token_id] * patches + [7, 8]])}


@pytest.mark.parametrize("config", [c for _, c in VISION], ids=VISION_IDS)
def test_vision_parameter_table_is_named_parameters(config):
    profile = profile_of(config)
    model = build_meta(config, profile)
    assert [(n, tuple(p.shape)) for n, p in model.named_parameters()] == list(profile.parameter_shapes)  # order too


@pytest.mark.parametrize("config", [c for _, c in VISION], ids=VISION_IDS)
def test_vision_paths_and_points_name_real_modules(config):
    profile = profile_of(config)
    modules = dict(build_meta(config, profile).named_modules())
    vision = profile.stack("vision")
    towers = len(modules[vision.layers_path])
    if profile.family == "llava":  # only the layers whose output LLaVA reads (docs/llava.md)
        chosen = config.vision_feature_layer
        deepest = max(i % (towers + 1) for i in ([chosen] if isinstance(chosen, int) else chosen))
        assert vision.n_layers == deepest == (towers - 1 if chosen == -2 else towers)
        assert profile.own_projector in modules and "model.vision_tower.post_layernorm" not in vision.norms
    else:
        assert vision.n_layers == towers and profile.token_embedding == "" and not profile.roles.inputs
    for stack in profile.stacks:
        assert stack.root in modules and all(norm in modules for norm in stack.norms)
        for i in range(stack.n_layers):
            inside = dict(modules[stack.layer_module(i)].named_modules())
            for sub in stack.sublayers:
                for point in (sub.x_point, sub.h_point):
                    assert point.rpartition(":")[0] in inside and profile.is_leaf(point.rpartition(":")[0]), point
                assert sub.norm in inside and all(owner in inside for owner in sub.owns)
                assert all(isinstance(inside[lin], nn.Linear) for _, linears in sub.projections for lin in linears)


@pytest.mark.parametrize("config", [c for _, c in VISION], ids=VISION_IDS)
def test_vision_points_are_the_residual_stream(config):
    """Pre-LN: X + H of a sublayer is X of the next one, and the last one's is the layer's output."""
    profile = profile_of(config)
    assert profile.pre_norm
    _assert_points_are_the_residual_stream(build_cpu(config, profile), profile, _pixels_and_ids(config))
