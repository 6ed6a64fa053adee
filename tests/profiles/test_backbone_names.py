"""Backbone names, mistyped or not; local checkpoints as transformers builds them; weights.

The hub is never reached here: its two functions are replaced by fakes that count their calls.
"""

from __future__ import annotations

import time

import huggingface_hub
import pytest
import torch
from transformers import AutoConfig, AutoModelForSeq2SeqLM, BartConfig, T5Config

import helpers  # noqa: F401  (quiet transformers logging)
from vlsurgery import caches
from vlsurgery.errors import BackboneError, UsageError
from vlsurgery.planning import count
from vlsurgery.profiles import backbone_name_problem, load_backbone, preset_names
from vlsurgery.profiles.backbone import _untie_as_profiled, load_model, with_lm_head
from vlsurgery.profiles.checkpoint import stores_tensor, weight_files


@pytest.fixture
def hub(monkeypatch):
    """A hub that is never reached: records every request; ``answer`` decides what it does."""
    calls = []

    class Hub:
        answer = ConnectionError("[Errno -2] Name or service not known")

    def metadata(url, **kwargs):
        calls.append(("metadata", url))
        raise Hub.answer

    def download(repo_id, filename, local_files_only=False, **kwargs):
        calls.append(("download", repo_id, local_files_only))
        raise huggingface_hub.errors.LocalEntryNotFoundError("not in the cache")

    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", metadata)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    caches.clear("profiles.hub_lookups")
    Hub.calls = calls
    yield Hub
    caches.clear("profiles.hub_lookups")


def online_requests(hub):
    return [c for c in hub.calls if c[0] == "metadata" or (c[0] == "download" and not c[2])]


@pytest.mark.parametrize("name", ["bart-base", "facebook/bart-base", "t5-v1_1-base", "tiny-t5"])
def test_presets_answer_offline_at_once(hub, name):
    started = time.perf_counter()
    assert load_backbone(name).preset is not None
    assert time.perf_counter() - started < 0.5 and hub.calls == []


@pytest.mark.parametrize("name, guess", [("bart-bas", "bart-base"), ("t5-smal", "t5-small"),
                                         ("flan-t5-bas", "flan-t5-base"), ("tiny_bart", "tiny-bart")])
def test_a_name_close_to_a_preset_gets_the_suggestion_without_the_hub(hub, name, guess):
    started = time.perf_counter()
    with pytest.raises(BackboneError, match=f"unknown backbone '{name}'.*Did you mean the preset '{guess}'"):
        load_backbone(name)
    assert time.perf_counter() - started < 0.5 and hub.calls == []


def test_other_bare_names_are_refused_with_what_a_hub_name_looks_like(hub):
    with pytest.raises(BackboneError, match="organisation/name") as info:
        load_backbone("electra")
    assert "Did you mean" not in str(info.value) and hub.calls == []


def test_a_hub_name_asks_the_hub_once_and_says_so(hub, caplog):
    for _ in range(2):
        with pytest.raises(BackboneError, match="asked the Hugging Face hub once and got ConnectionError: "
                                                r"\[Errno -2\].*Did you mean the preset 'bart-base'"):
            load_backbone("facebook/bart-bas")
    assert len(online_requests(hub)) == 1
    assert "asking the Hugging Face hub" in caplog.text and "one request" in caplog.text


def test_offline_a_hub_name_is_looked_up_in_the_cache_only(hub, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(BackboneError, match="not in the local Hugging Face cache .HF_HUB_OFFLINE is set"):
        load_backbone("google/some-model")
    assert online_requests(hub) == [] and hub.calls == [("download", "google/some-model", True)]


def test_names_can_be_checked_offline_without_loading(hub, tmp_path):
    """For `check`: the same verdicts as load_backbone, without reading a config or asking the hub."""
    assert backbone_name_problem("bart-base") is None and backbone_name_problem("google/t5-v1_1-base") is None
    assert backbone_name_problem("facebook/not-checked-offline") is None  # only the hub can tell
    assert backbone_name_problem(str(tmp_path)) is None
    assert "Did you mean the preset 'bart-base'" in backbone_name_problem("bart-bas")
    assert backbone_name_problem("./missing/model") == "backbone path './missing/model' does not exist"
    assert hub.calls == []


def test_paths_answer_at_once(hub, tmp_path):
    with pytest.raises(BackboneError, match="does not exist"):
        load_backbone(str(tmp_path / "missing"))
    with pytest.raises(BackboneError, match="has no config.json"):
        load_backbone(str(tmp_path))
    assert hub.calls == []


SMALL_T5 = dict(vocab_size=64, d_model=8, d_kv=4, d_ff=16, num_layers=2, num_decoder_layers=1, num_heads=2,
                relative_attention_num_buckets=4, decoder_start_token_id=0)
SMALL_BART = dict(vocab_size=64, d_model=8, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2,
                  decoder_attention_heads=2, encoder_ffn_dim=16, decoder_ffn_dim=12, max_position_embeddings=16)
CONFIGS = {
    "t5": lambda: T5Config(**SMALL_T5),
    "t5-v1.1-style": lambda: T5Config(**SMALL_T5, feed_forward_proj="gated-gelu", tie_word_embeddings=False),
    "bart-tied": lambda: BartConfig(**SMALL_BART),
    "bart-untied": lambda: BartConfig(**SMALL_BART, tie_word_embeddings=False),
}


def numel(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_saved_checkpoints_count_as_transformers_builds_them(name, tmp_path):
    """save_pretrained, reload (from_config and from_pretrained): the prediction is the model."""
    torch.manual_seed(0)
    AutoModelForSeq2SeqLM.from_config(CONFIGS[name]()).save_pretrained(tmp_path)
    assert weight_files(tmp_path)
    from_pretrained = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    from_config = AutoModelForSeq2SeqLM.from_config(AutoConfig.from_pretrained(tmp_path))
    assert numel(from_pretrained) == numel(from_config)
    spec = "encoder.ffn: adapter r=2"
    for backbone in (str(tmp_path), AutoConfig.from_pretrained(tmp_path)):
        predicted = count(spec, backbone)
        assert predicted.base == numel(from_pretrained), backbone
        assert predicted.plan.profile.parameters == {n: tuple(p.shape) for n, p in from_pretrained.named_parameters()}
    untied = from_pretrained.lm_head.weight is not from_pretrained.get_input_embeddings().weight
    assert untied == (name == "bart-untied")


def test_a_config_only_directory_counts_as_from_config(tmp_path):
    CONFIGS["t5-v1.1-style"]().save_pretrained(tmp_path)
    assert weight_files(tmp_path) == () and stores_tensor(tmp_path, "lm_head.weight") is None
    model = AutoModelForSeq2SeqLM.from_config(AutoConfig.from_pretrained(tmp_path))
    assert count("encoder.ffn: ia3", str(tmp_path)).base == numel(model)


def test_config_only_directory_needs_random_weights_asked_for(tmp_path):
    CONFIGS["t5"]().save_pretrained(tmp_path)
    with pytest.raises(BackboneError, match="has a config.json but no weights.*--random-weights"):
        load_model(str(tmp_path))
    with pytest.raises(BackboneError, match="no weights"):
        load_model(str(tmp_path), weights="pretrained")
    a, pretrained = load_model(str(tmp_path), weights="random", seed=3)
    b, _ = load_model(str(tmp_path), weights="random", seed=3)
    assert not pretrained and numel(a) == load_backbone(str(tmp_path)).profile.num_parameters
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    with pytest.raises(UsageError, match="weights='pretrain'.*'random'"):
        load_model(str(tmp_path), weights="pretrain")


def test_a_saved_model_loads_pretrained_and_random_on_request(tmp_path):
    torch.manual_seed(0)
    saved = AutoModelForSeq2SeqLM.from_config(CONFIGS["bart-untied"]())
    saved.save_pretrained(tmp_path)
    loaded, pretrained = load_model(str(tmp_path))
    assert pretrained and torch.equal(loaded.lm_head.weight, saved.lm_head.weight)
    fresh, pretrained = load_model(str(tmp_path), weights="random", seed=1)
    assert not pretrained and not torch.equal(fresh.lm_head.weight, saved.lm_head.weight)


def test_presets_have_no_pretrained_weights_without_a_hub_checkpoint():
    with pytest.raises(BackboneError, match="'tiny-bart' is an architecture without a checkpoint"):
        load_model("tiny-bart", weights="pretrained")


def test_a_random_model_of_an_untied_profile_gets_its_own_lm_head():
    """Presets of untied hub checkpoints (flan-t5, t5-v1_1) count lm_head; their random model has it."""
    assert "lm_head.weight" in load_backbone("t5-v1_1-base").profile.parameters
    torch.manual_seed(0)
    model = AutoModelForSeq2SeqLM.from_config(CONFIGS["t5-v1.1-style"]())
    profile = load_backbone(model).profile
    untied = with_lm_head(profile, True)
    assert with_lm_head(untied, False).parameters == profile.parameters
    model = _untie_as_profiled(model, untied)
    assert {n: tuple(p.shape) for n, p in model.named_parameters()} == untied.parameters
    assert torch.equal(model.lm_head.weight, model.shared.weight)  # same values, own tensor


def test_all_presets_still_resolve():
    assert all(load_backbone(name).profile.num_parameters > 0 for name in preset_names())
