"""`vlsurgery.diff` from Python: the structured result, mirrors, backbones, imports."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

import vlsurgery
from vlsurgery.diff import Diff, FieldChange, SiteChange
from vlsurgery.errors import BackboneError

ROOT = Path(__file__).resolve().parents[2]
BART = ROOT / "specs/paper/bart-base"


def test_structured_result():
    d = vlsurgery.diff(BART / "vl-adapter.vls", BART / "vl-pet-large.vls")
    assert isinstance(d, Diff) and not d.identical
    changes = {c.change: c for c in d.site_changes}
    changed = changes["changed"]
    assert changed.where == "encoder[0:6].{self_attn,ffn}" and changed.sites == 12
    assert [str(f) for f in changed.fields] == ["heads: 1 -> 4", "init_gate: default -> backbone",
                                                 "init_gate_down: default -> backbone", "gate: none -> matrix(r=96)"]
    assert changes["removed"].where == "decoder[0:6].{self_attn,cross_attn,ffn}"
    assert changes["added"].where == "decoder[0:6].cross_attn.v" and changes["added"].b == "lite r=96"
    (train,) = d.spec_changes
    assert train.what == "train" and not train.added
    assert "model.decoder.layers[0:6].final_layer_norm.weight" in train.removed
    assert d.trainable_delta == d.b_count.trainable - d.a_count.trainable == -29_184
    assert sum(c.trainable_delta for c in d.site_changes) + train.trainable_delta == d.trainable_delta
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.site_changes[0].where = "x"  # type: ignore[misc]
    assert json.loads(d.to_json()) == d.to_dict()


def test_mirror():
    ab = vlsurgery.diff(BART / "vl-adapter.vls", BART / "vl-pet-small.vls")
    ba = vlsurgery.diff(BART / "vl-pet-small.vls", BART / "vl-adapter.vls")
    assert ba == ab.reversed() and ba.reversed() == ab
    assert ba.trainable_delta == -ab.trainable_delta


def test_accepts_spec_objects_and_text():
    text = "backbone tiny-bart\nencoder.ffn: adapter r=4\n"
    d = vlsurgery.diff(vlsurgery.parse(text), text.replace("r=4", "r=8"))
    (c,) = d.site_changes
    assert (c.where, c.summary, c.a_each, c.b_each) == ("encoder[0:2].ffn", "r: 4 -> 8", 292, 552)
    assert d.a_title is None and d.b_title is None


def test_backbone_argument_overrides_both():
    d = vlsurgery.diff("backbone bart-base\nencoder.ffn: ia3\n", "backbone t5-base\nencoder.ffn: ia3\n",
                       backbone="tiny-t5")
    assert d.identical and d.same_backbone and d.a_backbone_from == d.b_backbone_from == "option"


def test_different_backbones_are_resolved_each_on_its_own():
    d = vlsurgery.diff(BART / "vl-pet-large.vls", ROOT / "specs/paper/t5-base/vl-pet-large.vls")
    assert not d.same_backbone and d.a_count.backbone == "bart-base" and d.b_count.backbone == "t5-base"
    backbone = d.spec_changes[0]
    assert backbone.what == "backbone" and backbone.total_delta == d.b_count.base - d.a_count.base
    assert any("each design is resolved on its own" in n for n in d.notes)
    assert "backbones bart-base -> t5-base" in d.render()


def test_same_backbone_spelled_differently_is_the_same():
    d = vlsurgery.diff("backbone bart-base\nencoder.ffn: ia3\n", "backbone facebook/bart-base\nencoder.ffn: ia3\n")
    assert d.same_backbone and d.identical


def test_a_spec_without_backbone_borrows_the_other():
    d = vlsurgery.diff("encoder.ffn: ia3\n", "backbone tiny-bart\nencoder.ffn: ia3\n")
    assert d.identical and d.a_backbone_from == "other"
    assert d.notes == ("a names no backbone: resolved on b's (tiny-bart)",)


def test_neither_backbone_is_an_error():
    with pytest.raises(BackboneError, match="neither spec names a backbone"):
        vlsurgery.diff("encoder.ffn: ia3\n", "encoder.ffn: lite\n")


def test_gated_t5_in_folds_to_one_role():
    d = vlsurgery.diff("backbone tiny-t5-gated\n", "backbone tiny-t5-gated\n*.ffn.in: lora r=2\n")
    (c,) = d.site_changes
    assert c.where == "{encoder,decoder}[0:2].ffn.in" and c.sites == 8 and c.change == "added"


def test_projector_and_shared_rows():
    a = "backbone tiny-bart\nencoder.ffn: compacter n=4 r=8\n"
    b = "backbone tiny-bart\nprojector feat_dim=16\ntrain projector\nencoder.ffn: compacter n=2 r=8\n"
    d = vlsurgery.diff(a, b)
    rows = {c.what: c for c in d.spec_changes}
    assert rows["projector"].change == "added" and rows["projector"].trainable_delta > 0
    assert rows["shared"].added and rows["shared"].removed
    total = sum(c.trainable_delta for c in d.site_changes) + sum(c.trainable_delta for c in d.spec_changes)
    assert total == d.trainable_delta
    assert d.site_changes[0].summary == "n: 4 -> 2"


def test_site_change_summary_for_method_change():
    c = SiteChange("changed", "encoder[0].ffn", ("encoder[0].ffn",), "adapter r=4", "ia3",
                   (FieldChange("method", "adapter", "ia3"),), 292, 32)
    assert c.summary == "adapter r=4 -> ia3" and c.trainable_delta == -260
    assert c.reversed().summary == "ia3 -> adapter r=4"
    d = vlsurgery.diff("backbone tiny-bart\nencoder.ffn: adapter r=4\n", "backbone tiny-bart\nencoder.ffn: ia3\n")
    assert d.site_changes[0].summary == "adapter r=4 -> ia3"


def test_importing_vlsurgery_and_diff_needs_neither_torch_nor_hypothesis():
    code = ("import sys, vlsurgery, vlsurgery.diff, vlsurgery.cli.main; "
            "d = vlsurgery.diff('specs/paper/bart-base/vl-pet.vls', 'specs/paper/bart-base/vl-pet-small.vls'); "
            "print(sorted(m for m in ('torch', 'hypothesis', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
