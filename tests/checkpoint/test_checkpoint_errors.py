"""Bad checkpoints are refused with a clear error, and the model given is left exactly as it was:
another design (the diff is shown), a truncated or corrupted tensor file, a missing tensor, a shape
mismatch, another backbone, an edited spec, a directory that is no checkpoint."""

import json

import pytest
import torch
from ckpt_models import VL_DESIGN, fresh, inputs, logits, trained
from safetensors.torch import load_file, save_file

import vlsurgery.checkpoint as ckpt
from vlsurgery.checkpoint import CheckpointError
from vlsurgery.compiler.compile import compile
from vlsurgery.compiler.transaction import Snapshot

OTHER_DESIGN = VL_DESIGN.replace("granularity=matrix", "granularity=vector")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ckpt")
    ckpt.save(trained(VL_DESIGN, "tiny-bart"), directory)
    return directory


def copy_of(saved, tmp_path):
    for name in ("vlsurgery.json", "vlsurgery.safetensors"):
        (tmp_path / name).write_bytes((saved / name).read_bytes())
    return tmp_path


def refused_untouched(directory, target, match):
    """restore() raises CheckpointError matching ``match`` and leaves ``target`` exactly as it was."""
    snapshot = Snapshot(target, values=True)
    before = {n: t.detach().clone() for n, t in target.state_dict().items()}
    with pytest.raises(CheckpointError, match=match) as info:
        ckpt.restore(directory, backbone=target)
    assert snapshot.changed() == []
    after = target.state_dict()
    assert list(after) == list(before) and all(torch.equal(after[n], v) for n, v in before.items())
    return str(info.value)


def test_another_design_is_refused_with_the_diff(saved):
    target = compile(OTHER_DESIGN, fresh("tiny-bart"), seed=2)
    message = refused_untouched(saved, target, "another design")
    assert "gate: matrix" in message and "-> vector" in message  # the diff table, site by site


def test_a_truncated_tensor_file_is_refused(saved, tmp_path):
    directory = copy_of(saved, tmp_path)
    data = (directory / "vlsurgery.safetensors").read_bytes()
    (directory / "vlsurgery.safetensors").write_bytes(data[: len(data) // 2])
    refused_untouched(directory, fresh("tiny-bart"), "truncated")


def test_a_corrupted_byte_is_refused(saved, tmp_path):
    directory = copy_of(saved, tmp_path)
    data = bytearray((directory / "vlsurgery.safetensors").read_bytes())
    data[-3] ^= 0xFF  # inside the tensor data: safetensors alone would not notice
    (directory / "vlsurgery.safetensors").write_bytes(bytes(data))
    refused_untouched(directory, fresh("tiny-bart"), "sha256")


def rewrite_tensors(directory, change):
    """Replace the tensor file by ``change(tensors)``, with matching size and sha256 records, as a
    buggy writer would: only the content check can catch it."""
    import hashlib

    path = directory / "vlsurgery.safetensors"
    tensors = change(load_file(path))
    save_file(tensors, path)
    meta = json.loads((directory / "vlsurgery.json").read_text())
    data = path.read_bytes()
    meta["tensors"].update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data), count=len(tensors))
    (directory / "vlsurgery.json").write_text(json.dumps(meta))


def test_a_missing_tensor_is_refused_by_name(saved, tmp_path):
    directory = copy_of(saved, tmp_path)
    gone = "model.encoder.layers.0.pet.ffn.delta.up.weight"
    rewrite_tensors(directory, lambda t: {k: v for k, v in t.items() if k != gone})
    message = refused_untouched(directory, fresh("tiny-bart"), "not in the checkpoint")
    assert gone in message


def test_a_shape_mismatch_is_refused(saved, tmp_path):
    directory = copy_of(saved, tmp_path)
    name = "model.decoder.layers.1.pet.cross_attn_v.delta.down.weight"
    rewrite_tensors(directory, lambda t: {**t, name: torch.zeros(3, 3)})
    message = refused_untouched(directory, fresh("tiny-bart"), "shape mismatch")
    assert name in message and "(3, 3)" in message


def test_a_checkpoint_of_another_backbone_is_refused(saved):
    refused_untouched(saved, fresh("tiny-t5"), "trained on bart")


def test_an_edited_spec_is_refused(saved, tmp_path):
    directory = copy_of(saved, tmp_path)
    meta = json.loads((directory / "vlsurgery.json").read_text())
    meta["spec"] = meta["spec"].replace("r=4", "r=8")
    (directory / "vlsurgery.json").write_text(json.dumps(meta))
    refused_untouched(directory, fresh("tiny-bart"), "does not match its sha256")


@pytest.mark.parametrize("content, match", [(None, "has no vlsurgery.json"), ("{not json", "not valid JSON"),
                                            ('{"format": "other/9"}', "expected 'vlsurgery.checkpoint/1'")])
def test_not_a_checkpoint(tmp_path, content, match):
    if content is not None:
        (tmp_path / "vlsurgery.json").write_text(content)
    refused_untouched(tmp_path, fresh("tiny-bart"), match)


def test_restore_without_a_backbone_needs_one_when_the_weights_exist_nowhere(saved):
    with pytest.raises(CheckpointError, match="built from a config"):
        ckpt.restore(saved)


def test_save_refuses_a_spec_that_is_not_the_models_design(tmp_path):
    model = trained(VL_DESIGN, "tiny-bart")
    with pytest.raises(CheckpointError, match="not the design"):
        ckpt.save(model, tmp_path, spec=OTHER_DESIGN)
    assert not (tmp_path / "vlsurgery.json").exists()


def test_a_failed_restore_leaves_a_compiled_model_usable(saved, tmp_path):
    directory = copy_of(saved, tmp_path)
    rewrite_tensors(directory, lambda t: {k: v for k, v in t.items() if ".projector." not in k})
    target = compile(VL_DESIGN, fresh("tiny-bart"), seed=5)
    batch = inputs(target)
    before = logits(target, batch)
    refused_untouched(directory, target, "not in the checkpoint")
    assert torch.equal(logits(target, batch), before)
