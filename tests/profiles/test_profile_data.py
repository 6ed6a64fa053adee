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

CONFIGS = family_configs()
IDS = [name for name, _ in CONFIGS]


@pytest.mark.parametrize("config", [c for _, c in CONFIGS], ids=IDS)
def test_parameter_table_is_named_parameters(config):
    """Names and shapes, tied tensors once, buffers excluded: exactly named_parameters()."""
    profile = profile_of(config)
    model = build_meta(config, profile)
    assert {n: tuple(p.shape) for n, p in model.named_parameters()} == profile.parameters
    assert profile.num_parameters == sum(p.numel() for p in model.parameters())
    assert "final_logits_bias" not in profile.parameters


@pytest.mark.parametrize("name", ["tiny-bart", "tiny-t5", "tiny-t5-gated", "t5-small", "bart-base"])
def test_preset_table_is_named_parameters(name):
    config = preset_config(name)
    profile = profile_of(config)
    assert profile.parameters == preset_profile(name).parameters  # JSON-only profile == config profile
    model = build_meta(config, profile)
    assert {n: tuple(p.shape) for n, p in model.named_parameters()} == profile.parameters


# Published parameter counts of the checkpoints (as loaded by from_pretrained).
KNOWN = {"bart-base": 139_420_416, "bart-large": 406_291_456, "t5-small": 60_506_624, "t5-base": 222_903_552,
         "t5-large": 737_668_096, "t5-3b": 2_851_598_336, "flan-t5-base": 247_577_856,
         "flan-t5-small": 76_961_152, "flan-t5-large": 783_150_080}


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
                    assert type(inside[sub.norm]).__name__.endswith("LayerNorm")
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


@pytest.mark.parametrize("config", [c for _, c in CONFIGS], ids=IDS)
def test_points_are_the_residual_stream(config):
    """X and H are where the paper says: the residual add of sublayer j gives X of sublayer j+1
    (pre-LN: X + H; post-LN: norm(X + H)), and the last one gives the layer's output."""
    profile = profile_of(config)
    model = build_cpu(config, profile)
    store, handles = {}, []
    for stack in profile.stacks:
        for i in range(stack.n_layers):
            layer = model.get_submodule(stack.layer_module(i))
            for sub in stack.sublayers:
                handles.append(_capture(layer, sub.x_point, store, (stack.name, i, sub.name, "x")))
                handles.append(_capture(layer, sub.h_point, store, (stack.name, i, sub.name, "h")))
            handles.append(layer.register_forward_hook(
                lambda mod, a, out, key=(stack.name, i): store.__setitem__(key, out[0] if isinstance(out, tuple) else out)))
    ids = torch.tensor([[5, 6, 7, 8, 9, 2]])
    with torch.no_grad():
        model(input_ids=ids, decoder_input_ids=torch.tensor([[2, 5, 6, 7]]))
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


def test_unknown_family_lists_supported():
    from transformers import GPT2Config

    with pytest.raises(BackboneError) as e:
        profile_of(GPT2Config(n_layer=1))
    assert "gpt2" in str(e.value) and "bart" in str(e.value) and "t5" in str(e.value)


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
        assert {"pad_token_id", "eos_token_id", "decoder_start_token_id", "vocab_size", "d_model"} <= set(data["config"])
    assert {"bart-base", "bart-large", "t5-small", "t5-base", "t5-large", "t5-3b", "flan-t5-base", "tiny-bart",
            "tiny-t5", "tiny-t5-gated"} <= set(preset_names())


def test_profile_is_fast_for_t5_3b():
    start = time.perf_counter()
    profile = profile_of(preset_config("t5-3b"))
    assert profile.attn_inner == 4096 and profile.num_parameters == KNOWN["t5-3b"]
    assert time.perf_counter() - start < 1.0
