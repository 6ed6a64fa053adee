"""``vlsurgery merge``: a spec gives the report only; a checkpoint directory is restored, merged and
written as a plain Hugging Face model.  (The command is run through its own parser here, so the
test does not depend on its registration in vlsurgery.cli.main.)"""

import argparse

import pytest
import torch
from ckpt_models import LINEAR_DESIGN, VL_DESIGN, inputs, logits, trained

import vlsurgery.checkpoint as ckpt
from vlsurgery.cli import merge as merge_cli


def run(argv):
    parser = argparse.ArgumentParser(prog="vlsurgery")
    merge_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["merge", *argv])
    return args.func(args)


def test_a_spec_gets_the_report_and_fails_when_a_site_cannot_fold(tmp_path, capsys):
    spec = tmp_path / "d.vls"
    spec.write_text("backbone tiny-bart\n" + VL_DESIGN)
    assert run([str(spec)]) == 1
    out, err = capsys.readouterr()
    assert "folds     decoder[0].self_attn.q (lora)" in out
    assert "cannot    decoder[0].cross_attn.v (lite): lite is v(x) + Up(GELU(Down(x)))" in out
    assert "--partial" in err
    assert run([str(spec), "--partial"]) == 0


def test_a_checkpoint_directory_is_merged_into_a_plain_model(tmp_path, capsys):
    from transformers import AutoModelForSeq2SeqLM

    model = ckpt.enable_save_pretrained(trained(LINEAR_DESIGN, "tiny-t5"))
    batch = inputs(model, visual=False)
    model.save_pretrained(tmp_path / "trained")
    assert run([str(tmp_path / "trained"), "--out", str(tmp_path / "merged")]) == 0
    assert "a plain Hugging Face model" in capsys.readouterr().out
    assert not (tmp_path / "merged" / "vlsurgery.json").exists()
    plain = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "merged")
    torch.testing.assert_close(logits(plain, batch), logits(model, batch), rtol=1e-5, atol=1e-5)


def test_a_preset_is_no_backbone_for_a_checkpoint(tmp_path):
    ckpt.save(trained(LINEAR_DESIGN, "tiny-bart"), tmp_path)
    with pytest.raises(ckpt.CheckpointError, match="has no weights"):
        run([str(tmp_path), "--backbone", "tiny-bart"])
