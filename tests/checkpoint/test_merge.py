"""Merging folds exactly-linear sites into the base weights: the merged model is a plain Hugging
Face model with the same logits (to rounding); what cannot fold is listed with the reason and
either refused (model untouched) or kept with partial=True."""

import warnings

import pytest
import torch
from ckpt_models import LINEAR_DESIGN, VL_DESIGN, fresh, inputs, logits, trained

import vlsurgery.checkpoint as ckpt
from vlsurgery.checkpoint import MergeError, merge, merge_report
from vlsurgery.compiler.install import is_rewritten
from vlsurgery.compiler.transaction import Snapshot


def close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backbone", ["tiny-bart", "tiny-t5", "tiny-t5-gated"])
def test_a_linear_design_merges_into_a_plain_model_with_the_same_logits(backbone, tmp_path):
    model = ckpt.enable_save_pretrained(trained(LINEAR_DESIGN, backbone))
    batch = inputs(model, visual=False)
    before = logits(model, batch)
    assert merge(model) is model
    close(logits(model, batch), before)
    plain = fresh(backbone)
    assert type(model) is type(plain)
    assert not any(is_rewritten(m) for m in model.modules())
    assert list(model.state_dict()) == list(plain.state_dict())
    assert ckpt.spec_of(model) is None and not hasattr(model, "vls_design")
    # no vlsurgery needed any more: save_pretrained/from_pretrained is a plain round trip
    from transformers import AutoModelForSeq2SeqLM

    model.save_pretrained(tmp_path)
    assert not (tmp_path / "vlsurgery.json").exists()
    close(logits(AutoModelForSeq2SeqLM.from_pretrained(tmp_path), batch), before)


def test_the_merge_actually_changes_the_weights():
    model = trained(LINEAR_DESIGN, "tiny-bart")
    base = fresh("tiny-bart")
    merge(model)
    w = "model.decoder.layers.0.encoder_attn.v_proj.weight"
    assert not torch.equal(model.state_dict()[w], base.state_dict()[w])
    untouched = "model.decoder.layers.0.encoder_attn.k_proj.weight"
    assert torch.equal(model.state_dict()[untouched], base.state_dict()[untouched])


def test_sites_that_cannot_fold_are_listed_with_the_reason_and_nothing_changes():
    model = trained(VL_DESIGN, "tiny-bart")
    snapshot = Snapshot(model, values=True)
    with pytest.raises(MergeError) as info:
        merge(model)
    message = str(info.value)
    assert "decoder[0].cross_attn.v (lite)" in message and "GELU" in message
    assert "encoder[1].ffn (adapter)" in message and "sublayer" in message
    assert "projector" in message and "--partial" in message
    assert "decoder[0].self_attn.q" not in message  # the LoRA site folds
    assert snapshot.changed() == []


@pytest.mark.parametrize("granularity, folds", [("none", True), ("vector", True), ("scalar", False),
                                                ("token", False), ("matrix", False)])
def test_gated_lora_folds_only_with_a_constant_gate(granularity, folds):
    gate_r = " gate_r=2" if granularity == "matrix" else ""
    report = merge_report(f"backbone tiny-bart\ndecoder.self_attn.v: lora r=2 granularity={granularity}{gate_r}")
    assert all(s.folds == folds for s in report.sites)
    if not folds:
        assert all(f"granularity={granularity}" in s.reason for s in report.sites)


def test_partial_merge_folds_what_folds_keeps_the_rest_and_round_trips(tmp_path):
    model = trained(VL_DESIGN, "tiny-t5")
    batch = inputs(model)
    before = logits(model, batch)
    with pytest.warns(UserWarning, match=r"kept .* cannot fold.*decoder\[0\]\.cross_attn\.v"):
        merge(model, partial=True)
    close(logits(model, batch), before)
    assert not any("self_attn_q" in n for n in model.state_dict())  # the LoRA sites are gone
    assert any(".pet.cross_attn_v." in n for n in model.state_dict())  # lite kept
    assert "decoder[0].self_attn.q: none\ndecoder[1].self_attn.q: none" in ckpt.spec_of(model)
    with pytest.raises(ckpt.CheckpointError, match="save_pretrained"):
        ckpt.save(model, tmp_path / "pet-only")  # the base changed: the PET tensors alone would lie
    model.save_pretrained(tmp_path / "hf")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        restored = ckpt.restore(tmp_path / "hf")
    assert torch.equal(logits(restored, batch), logits(model, batch))


def test_merge_needs_the_design():
    from vlsurgery.errors import UsageError

    model = fresh("tiny-bart")
    with pytest.raises(UsageError, match="carries no spec"):
        merge(model)
