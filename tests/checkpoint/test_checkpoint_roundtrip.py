"""Round trips: save -> restore onto a fresh backbone, and save_pretrained -> restore, give the
trained model back exactly (equal logits, equal trainable flags), and no pickle is written."""

import json

import pytest
import torch
from ckpt_models import VL_DESIGN, fresh, inputs, logits, trained

import vlsurgery.checkpoint as ckpt
from vlsurgery.planning import plan
from vlsurgery.compiler.install import is_rewritten, original_class

BACKBONES = ("tiny-bart", "tiny-t5", "tiny-t5-gated")


@pytest.mark.parametrize("backbone", BACKBONES)
def test_save_then_restore_onto_a_fresh_backbone_gives_equal_logits(backbone, tmp_path):
    model = trained(VL_DESIGN, backbone)
    batch = inputs(model)
    ckpt.save(model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vlsurgery.json", "vlsurgery.safetensors"]
    target = fresh(backbone)  # the same base weights, nothing else
    restored = ckpt.restore(tmp_path, backbone=target)
    assert restored is target
    assert torch.equal(logits(restored, batch), logits(model, batch))
    assert ([n for n, p in restored.named_parameters() if p.requires_grad]
            == [n for n, p in model.named_parameters() if p.requires_grad])
    assert ckpt.spec_of(restored) == ckpt.spec_of(model)


def test_the_checkpoint_holds_exactly_the_tensors_a_fresh_compile_cannot_reproduce(tmp_path):
    model = trained(VL_DESIGN, "tiny-bart")
    names = set(ckpt.checkpoint_tensors(model, plan(VL_DESIGN, model.config).train))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable <= names                      # every trained tensor
    assert any(".vls_prefix.projector." in n for n in names)
    # the projector's reference to the token embedding is the base's, not a checkpoint tensor
    assert not any(n.endswith("token_embedding.weight") for n in names)
    assert "model.shared.weight" not in names
    ckpt.save(model, tmp_path)
    meta = json.loads((tmp_path / "vlsurgery.json").read_text())
    assert meta["format"] == "vlsurgery.checkpoint/1" and meta["tensors"]["count"] == len(names)
    assert meta["backbone"]["family"] == "bart" and meta["backbone"]["sizes"]["d_model"] == 32
    assert meta["backbone"]["weights"] is None  # built from a config: its weights exist nowhere else


@pytest.mark.parametrize("backbone", ["tiny-bart", "tiny-t5"])
def test_save_pretrained_then_restore_gives_the_trained_model_back(backbone, tmp_path):
    model = ckpt.enable_save_pretrained(trained(VL_DESIGN, backbone))
    assert is_rewritten(model) and isinstance(model, original_class(model))
    assert type(model).__name__ == original_class(model).__name__
    batch = inputs(model)
    model.save_pretrained(tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"config.json", "model.safetensors", "vlsurgery.json", "vlsurgery.safetensors"} <= names
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == [type(model).__name__]
    restored = ckpt.restore(tmp_path)  # the base weights come from the directory itself
    assert torch.equal(logits(restored, batch), logits(model, batch))
    # and the restored model saves the same way again
    restored.save_pretrained(tmp_path / "again")
    again = ckpt.restore(tmp_path / "again")
    assert torch.equal(logits(again, batch), logits(model, batch))


def test_restore_from_a_named_backbone_directory(tmp_path):
    base = fresh("tiny-t5")
    base.save_pretrained(tmp_path / "base")
    from transformers import AutoModelForSeq2SeqLM

    from vlsurgery.compiler.compile import compile

    model = compile(VL_DESIGN, AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "base"), seed=4)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05)
    ckpt.save(model, tmp_path / "pet")
    meta = json.loads((tmp_path / "pet" / "vlsurgery.json").read_text())
    assert meta["backbone"]["weights"] == "path" and meta["backbone"]["name"] == str((tmp_path / "base").resolve())
    restored = ckpt.restore(tmp_path / "pet")
    batch = inputs(model)
    assert torch.equal(logits(restored, batch), logits(model, batch))


def test_restore_onto_a_model_compiled_with_the_same_design_loads_in_place(tmp_path):
    from vlsurgery.compiler.compile import compile

    model = trained(VL_DESIGN, "tiny-bart")
    ckpt.save(model, tmp_path)
    target = compile(VL_DESIGN, fresh("tiny-bart"), seed=9)
    batch = inputs(model)
    assert not torch.equal(logits(target, batch), logits(model, batch))
    assert ckpt.restore(tmp_path, backbone=target) is target
    assert torch.equal(logits(target, batch), logits(model, batch))
