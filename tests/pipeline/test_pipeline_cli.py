"""The `compile` and `demo` commands, end to end."""

import re

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


def test_demo_learns_the_task(capsys):
    assert main(["demo", "--steps", "150"]) == 0
    out = capsys.readouterr().out
    before, after = (int(x) for x in re.findall(r"answer accuracy (\d+)%", out))
    assert after >= 90 and after > before


def test_compile_reports_spec_errors(tmp_path, capsys):
    bad = tmp_path / "bad.vls"
    bad.write_text("backbone tiny-bart\nencoder[5].ffn: adapter\n")
    assert main(["compile", str(bad)]) == 1
    assert "out of range" in capsys.readouterr().err
