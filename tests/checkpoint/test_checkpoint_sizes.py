"""A checkpoint records its backbone's sizes from the profile, so restoring onto a backbone of
other sizes is refused with the sizes named, in every family (GPT-2's and LLaVA's configs name
them unlike BART's or LLaMA's); a checkpoint of the older record (config fields) still loads."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

import vlsurgery
from vlsurgery.checkpoint import CheckpointError
from vlsurgery.profiles import preset_config
from vlsurgery.profiles.backbone import load_model

DESIGN = "decoder.self_attn.q: lora r=2"


def gpt2(**sizes):
    torch.manual_seed(0)
    config = preset_config("tiny-gpt2")
    for key, value in sizes.items():
        setattr(config, key, value)
    return AutoModelForCausalLM.from_config(config).eval()


@pytest.fixture
def saved(tmp_path):
    model = vlsurgery.compile(DESIGN, gpt2())
    vlsurgery.save(model, tmp_path)
    return tmp_path


def test_a_gpt2_checkpoint_records_its_sizes(saved):
    sizes = json.loads((saved / "vlsurgery.json").read_text())["backbone"]["sizes"]
    config = preset_config("tiny-gpt2")
    assert sizes["family"] == "gpt2" and sizes["d_model"] == config.n_embd
    assert sizes["decoder.n_layers"] == config.n_layer and sizes["n_heads"] == config.n_head


@pytest.mark.parametrize("change, named", [({"n_embd": 64}, "d_model"), ({"n_layer": 3}, "decoder.n_layers")])
def test_a_gpt2_of_another_size_is_refused_with_the_size_named(saved, change, named):
    with pytest.raises(CheckpointError, match="other sizes") as refusal:
        vlsurgery.restore(saved, backbone=gpt2(**change))
    assert f"{named}: " in str(refusal.value)


def test_a_llava_checkpoint_records_its_sizes(tmp_path):
    model = vlsurgery.compile(DESIGN, load_model("tiny-llava", seed=0)[0])
    vlsurgery.save(model, tmp_path)
    sizes = json.loads((tmp_path / "vlsurgery.json").read_text())["backbone"]["sizes"]
    assert {"family", "d_model", "vocab_size", "decoder.n_layers", "decoder.d_ff"} <= set(sizes)


def test_a_checkpoint_recording_config_fields_still_restores(saved):
    path = saved / "vlsurgery.json"
    meta = json.loads(path.read_text())
    config = preset_config("tiny-gpt2")
    meta["backbone"]["sizes"] = {"vocab_size": config.vocab_size, "tie_word_embeddings": config.tie_word_embeddings}
    path.write_text(json.dumps(meta))
    restored = vlsurgery.restore(saved, backbone=gpt2())
    assert any(".pet." in name for name, _ in restored.named_parameters())
