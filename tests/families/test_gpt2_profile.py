"""The GPT-2 profile against the real module tree: parameters (Conv1D's transposed weights, tied or
untied lm_head), module paths and points, presets, published sizes, and the shipped specs."""

from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.pytorch_utils import Conv1D

import vlsurgery
from vlsurgery.profiles import load_backbone, preset_config, profile_of
from vlsurgery.profiles.backbone import load_model, preset_profile

SPECS = sorted((Path(__file__).resolve().parents[2] / "specs" / "gpt2").glob("*.vls"))


def table(model):
    return {n: tuple(p.shape) for n, p in model.named_parameters()}


@pytest.mark.parametrize("tied", [True, False])
def test_parameter_table_is_named_parameters(tied):
    config = GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=3, n_head=2, n_inner=24,
                        tie_word_embeddings=tied, bos_token_id=0, eos_token_id=0)
    profile = profile_of(config)
    model = GPT2LMHeadModel(config)
    assert profile.parameters == table(model)
    assert profile.num_parameters == sum(p.numel() for p in model.parameters())
    assert ("lm_head.weight" in profile.parameters) is (not tied)


@pytest.mark.parametrize("name, published", [("gpt2", 124_439_808), ("gpt2-medium", 354_823_168)])
def test_presets_are_the_published_models(name, published):
    profile = preset_profile(name)
    assert profile.num_parameters == published
    assert profile == profile_of(preset_config(name))  # the JSON-only profile is the config's
    with torch.device("meta"):
        assert table(GPT2LMHeadModel(preset_config(name))) == profile.parameters
    assert load_backbone(f"openai-community/{name}").preset == name


def test_conv1d_widths_are_read_the_right_way_round():
    profile = preset_profile("gpt2")
    layer = "transformer.h.3"
    assert profile.linear_dims(f"{layer}.attn.c_attn") == (768, 2304)
    assert profile.linear_dims(f"{layer}.mlp.c_fc") == (768, 3072)
    assert profile.linear_dims(f"{layer}.mlp.c_proj") == (3072, 768)
    sites = {s.path: s for s in vlsurgery.plan("decoder[3].self_attn.{q,k,v,qkv}: lora", "gpt2").sites}
    assert {p: (s.dims.d_in, s.dims.d_out, s.columns) for p, s in sites.items()} == {
        "decoder[3].self_attn.q": (768, 768, (0, 768)), "decoder[3].self_attn.k": (768, 768, (768, 1536)),
        "decoder[3].self_attn.v": (768, 768, (1536, 2304)), "decoder[3].self_attn.qkv": (768, 2304, None)}


def test_paths_and_points_name_real_modules():
    model, _ = load_model("tiny-gpt2")
    assert type(model) is GPT2LMHeadModel
    profile = load_backbone("tiny-gpt2").profile
    modules = dict(model.named_modules())
    (stack,) = profile.stacks
    assert len(modules[stack.layers_path]) == stack.n_layers and all(n in modules for n in stack.norms)
    assert model.lm_head.weight is model.get_input_embeddings().weight  # tied: counted once
    layer = dict(modules[stack.layer_module(1)].named_modules())
    for sub in stack.sublayers:
        for point in (sub.x_point, sub.h_point):
            module, _, side = point.rpartition(":")
            assert module in layer and profile.is_leaf(module), point
        assert isinstance(layer[sub.norm], torch.nn.LayerNorm)
        for role, linears in sub.projections:
            assert all(isinstance(layer[linear], Conv1D) for linear in linears), role
        assert all(owner in layer for owner in sub.owns)


@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_shipped_specs_compile_on_tiny_gpt2_with_their_counts(path):
    predicted = vlsurgery.count(path, "tiny-gpt2")
    model = vlsurgery.compile(vlsurgery.parse(path.read_text()), load_model("tiny-gpt2")[0], seed=0)
    assert predicted.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad) > 0
    assert predicted.total == sum(p.numel() for p in model.parameters())
    assert vlsurgery.count(path).plan.profile.family == "gpt2"  # the spec names the real GPT-2


def test_the_shipped_specs_exist():
    assert {p.name for p in SPECS} >= {"lora-qv.vls", "ia3.vls"}
