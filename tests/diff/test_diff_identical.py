"""Designs that differ only in how they are written are identical to `diff`; real changes are not."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlsurgery.cli.main import main
from vlsurgery.diff import diff

ROOT = Path(__file__).resolve().parents[2]
LARGE = ROOT / "specs/paper/bart-base/vl-pet-large.vls"

# VL-PET-large on bart-base (vl-pet.vls + vl-pet-large.vls), written in other ways
SAME = {
    "flattened-reformatted": """
        # one file, other spacing, quotes, `;`, reordered declarations
        train projector,encoder.layernorm
        let r_v=96; let r=96
        backbone "bart-base"
        projector   feat_dim=2048 pos_dim=5 images=2 init_feat=backbone init_pos=backbone init_img_order=backbone
        encoder.{ffn,self_attn}: adapter heads=4 r=$r      # the multi-head adapter
        decoder.cross_attn.v:lite r=$r_v
        encoder.{self_attn,ffn}: granularity=large gate_r=$r
        encoder.{self_attn,ffn}: init_down=backbone init_up=backbone init_gate=backbone init_gate_down=backbone
        decoder.cross_attn.v: init_down=backbone init_up=backbone
    """,
    "no-lets": """
        backbone bart-base
        projector init_feat=backbone init_pos=backbone init_img_order=backbone
        train encoder.layernorm, projector
        encoder.{self_attn,ffn}: adapter r=96 heads=4 granularity=matrix gate_r=96
        decoder.cross_attn.v: lite r=96
        encoder.{self_attn,ffn}: init_down=backbone init_up=backbone init_gate=backbone init_gate_down=backbone
        decoder.cross_attn.v: init_down=backbone init_up=backbone
    """,
    "other-lets-same-values": """
        backbone bart-base
        let width = 96; let heads = 4
        projector init_feat=backbone init_pos=backbone init_img_order=backbone
        train projector; train encoder.layernorm
        decoder.cross_attn.v: lite r=$width
        encoder.self_attn: adapter r=$width heads=$heads granularity=large
        encoder.ffn: adapter r=$width heads=$heads granularity=large
        encoder.{self_attn,ffn}: init_down=backbone init_up=backbone init_gate=backbone init_gate_down=backbone
        decoder.cross_attn.v: init_down=backbone init_up=backbone
    """,
    "derived-values": """
        backbone facebook/bart-base
        projector init_feat=backbone init_pos=backbone init_img_order=backbone
        train encoder.layernorm, projector
        encoder.{self_attn,ffn}: adapter reduction=8 heads=4      # r = 768 / 8 = 96; gate_r defaults to r
        encoder.{self_attn,ffn}: granularity=matrix
        decoder.cross_attn.v: lite                                 # r_v defaults to 96
        encoder.{self_attn,ffn}: init_down=backbone init_up=backbone init_gate=backbone init_gate_down=backbone
        decoder.cross_attn.v: init_down=backbone init_up=backbone
    """,
    "overridden-then-restored": """
        backbone bart-base
        projector init_feat=backbone init_pos=backbone init_img_order=backbone
        train encoder.layernorm, projector
        *: adapter r=8                      # replaced below everywhere it matters
        decoder: none
        encoder.{self_attn,ffn}: ia3
        encoder.{self_attn,ffn}: adapter r=96 heads=4 granularity=large
        decoder.cross_attn.v: lite
        encoder.{self_attn,ffn}: init_down=backbone init_up=backbone init_gate=backbone init_gate_down=backbone
        decoder.cross_attn.v: init_down=backbone init_up=backbone
    """,
    "yaml": """
        backbone: bart-base
        let: {r: 96}
        projector: {init_feat: backbone, init_pos: backbone, init_img_order: backbone}
        train: [projector, encoder.layernorm]
        sites:
          - at: "decoder.cross_attn.v"
            method: lite
            r: $r
          - at: "encoder.{self_attn,ffn}"
            method: adapter
            r: $r
            heads: 4
            granularity: middleY
          - at: "encoder.{self_attn,ffn}"
            granularity: large
            init_down: backbone
            init_up: backbone
            init_gate: backbone
            init_gate_down: backbone
          - at: decoder.cross_attn.v
            init_down: backbone
            init_up: backbone
    """,
}

DIFFERENT = {  # each differs from VL-PET-large in one way; the expected row
    "activation": ("encoder.{self_attn,ffn}: activation=relu", "activation: gelu_new -> relu"),
    "one-layer": ("encoder[5].ffn: heads=2", "heads: 4 -> 2"),
    "removed": ("decoder.cross_attn.v: none", "lite r=96"),
    "placement": ("encoder.ffn: placement=parallel", "placement: sequential -> parallel"),
}


def _write(tmp_path, name, text):
    import textwrap

    suffix = ".yaml" if name == "yaml" else ".vls"
    path = tmp_path / f"{name}{suffix}"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


@pytest.mark.parametrize("name", SAME)
def test_written_differently_is_identical(tmp_path, name):
    d = diff(LARGE, _write(tmp_path, name, SAME[name]))
    assert d.identical, d.render()
    assert d.trainable_delta == 0 and d.total_delta == 0


def test_identical_exit_status(tmp_path, capsys):
    assert main(["diff", str(LARGE), str(_write(tmp_path, "yaml", SAME["yaml"]))]) == 0
    assert "identical" in capsys.readouterr().out


@pytest.mark.parametrize("name", DIFFERENT)
def test_one_change_is_one_row(tmp_path, name):
    line, expected = DIFFERENT[name]
    variant = _write(tmp_path, name, f'extends "{LARGE}"\n{line}\n')
    d = diff(LARGE, variant)
    assert not d.identical
    assert len(d.site_changes) == 1 and not d.spec_changes, d.render()
    assert d.site_changes[0].summary == expected
    assert main(["diff", "-q", str(LARGE), str(variant)]) == 1


def test_a_change_with_no_cost_is_still_a_change(tmp_path):
    variant = _write(tmp_path, "v", f'extends "{LARGE}"\nencoder.{{self_attn,ffn}}: activation=relu\n')
    d = diff(LARGE, variant)
    assert not d.identical and d.trainable_delta == 0
    assert d.site_changes[0].where == "encoder[0:6].{self_attn,ffn}" and d.site_changes[0].sites == 12
