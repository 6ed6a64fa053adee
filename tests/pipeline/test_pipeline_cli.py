"""The `compile` and `demo` commands, end to end."""

import re

import pytest

from vlsurgery.cli.main import main
from vlsurgery.resources import spec_library

DEMO = str(spec_library() / "examples" / "demo.vls")


def test_compile_shows_the_generated_code(capsys):
    assert main(["compile", DEMO, "--show-code"]) == 0
    out = capsys.readouterr().out
    assert "equal to the prediction of `vlsurgery count`" in out
    # the rewritten encoder layer reads X and H at the points the profile names, and the
    # cross-attention value projection carries its lite adapter
    assert "self.pet.self_attn(hidden_states, getitem)" in out
    assert re.search(r"self\.pet\.ffn\(self_attn_layer_norm, fc2\)", out)
    assert "# Linear: model.decoder.layers.0.encoder_attn.v_proj" in out


def test_compile_onto_another_backbone_as_json(capsys):
    import json

    assert main(["compile", DEMO, "--backbone", "tiny-t5", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["counts_agree"] and data["trainable"] == data["predicted_trainable"]
    assert {layer["class"] for layer in data["layers"]} >= {"T5Block", "Linear"}


def _demo_table(out: str) -> dict[str, tuple[int, int, int]]:
    """question type -> (chance, projector alone, design) percentages, from the demo's results table."""
    rows = re.findall(r"^  (colour|count|exist|shape|all) +(\d+)% +(\d+)% +(\d+)%$", out, re.M)
    return {kind: tuple(int(x) for x in numbers) for kind, *numbers in rows}


def test_demo_runs_every_stage_and_restores_exactly(tmp_path, capsys):
    """A few steps only (the learning itself: test_demo_learns_the_task, slow): every stage reports, the
    checkpoint is kept with --output, and the restored model agrees with the trained one."""
    assert main(["demo", "--steps", "3", "--baseline-steps", "1", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for stage in ("1/5 count", "2/5 compile and train", "3/5 baseline", "4/5 results", "5/5 save and restore"):
        assert f"== {stage}:" in out
    assert "6,400 trainable parameters, as counted" in out and "trained 3 steps" in out and "1 step in" in out
    assert set(_demo_table(out)) == {"colour", "count", "exist", "shape", "all"}
    assert "restored: 500 of 500 answers the same as the trained model's; logits identical" in out
    assert (tmp_path / "vlsurgery.safetensors").is_file() and (tmp_path / "projector-alone").is_dir()
    assert "temporary directory" not in out


def test_demo_runs_a_decoder_only_design(tmp_path, capsys):
    """A decoder-only design: the round trip compares logits on the run's own (causal) batches."""
    spec = tmp_path / "llama.vls"
    spec.write_text("backbone tiny-llama\nprojector feat_dim=16\ntrain projector\ndecoder.ffn: adapter r=4\n")
    assert main(["demo", "--spec", str(spec), "--steps", "3", "--baseline-steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "== 5/5 save and restore:" in out and "logits identical" in out


def test_restored_model_is_compared_on_the_trained_models_device():
    """restore() builds on the CPU; the Trainer leaves the trained model on its device (CUDA when there is
    one): the comparison moves the batch to the model's device rather than assuming the CPU."""
    import torch

    from vlsurgery.cli import demo

    class OnMeta(torch.nn.Module):  # parameters on a device that is not the CPU
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1, device="meta"))

        def forward(self, input_ids):
            assert input_ids.device == self.w.device
            return type("Out", (), {"logits": torch.zeros(1)})()

    class Data:
        eval = [0, 1]

    def collator(examples):
        return {"input_ids": torch.tensor(examples)}

    assert demo._same_logits(OnMeta(), OnMeta(), collator, Data()) is True


def test_demo_rejects_a_design_without_projector(tmp_path, capsys):
    spec = tmp_path / "plain.vls"
    spec.write_text("backbone tiny-t5\nencoder.ffn: adapter r=4\n")
    assert main(["demo", "--spec", str(spec)]) == 2
    assert "needs a `projector`" in capsys.readouterr().err
    assert main(["demo", "--steps", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_learns_the_task(capsys):
    """The demo as the README runs it: well above chance and above the projector alone."""
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    chance, alone, design = _demo_table(out)["all"]
    assert design >= chance + 15 and design >= alone + 15, out
    assert "logits identical" in out and "temporary directory" in out


def test_compile_reports_spec_errors(tmp_path, capsys):
    bad = tmp_path / "bad.vls"
    bad.write_text("backbone tiny-bart\nencoder[5].ffn: adapter\n")
    assert main(["compile", str(bad)]) == 1
    assert "out of range" in capsys.readouterr().err
