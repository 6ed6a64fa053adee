"""The command line: `vlsurgery check` and `vlsurgery fmt` (exit codes and output)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vlsurgery.cli.main import main

BASE = "backbone bart-base\nlet r = 96\nprojector\ntrain encoder.layernorm, projector\nencoder.{self_attn,ffn}: adapter r=$r heads=4\n"
CHILD = 'extends "base.vls"\nencoder.self_attn: granularity=vector heads=4; decoder.cross_attn.v: lite\n'


@pytest.fixture
def specs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.vls").write_text(BASE)
    (tmp_path / "child.vls").write_text(CHILD)
    return tmp_path


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_check_resolves_on_the_backbone_the_spec_names(specs, capsys):
    """check accepts only what count accepts: on bart-base there is no encoder[7], and `train
    projector` needs a projector."""
    (specs / "deep.vls").write_text("backbone bart-base\nencoder[7].ffn: adapter\n")
    (specs / "typo.vls").write_text("backbone bart-bas\nencoder.ffn: adapter\n")
    (specs / "noproj.vls").write_text("backbone bart-base\ntrain projector\nencoder.ffn: adapter\n")
    status, _, err = run(capsys, "check", "deep.vls", "typo.vls", "noproj.vls")
    assert status == 1
    assert "deep.vls:2:1: error: layer 7 is out of range: encoder of bart-base has 6 layers" in err
    assert "typo.vls: error: unknown backbone 'bart-bas'" in err and "Did you mean the preset 'bart-base'?" in err
    assert "this spec has no projector" in err


def test_check_ok_golden(specs, capsys):
    status, out, err = run(capsys, "check", "child.vls")
    assert status == 0 and err == ""
    assert out == """\
child.vls: ok
backbone   bart-base
extends    child.vls -> base.vls
lets       r = 96
projector
  defaults  feat_dim=2048 images=2 init_feat=default init_img_order=default init_pos=default pos_dim=5
train      encoder.layernorm, projector
statements (3)
  #1  base.vls:5  encoder.{ffn,self_attn}: adapter
        set       heads=4 r=96 ($r)
        defaults  activation=gelu_new granularity=none init_down=default init_up=default placement=sequential reduction=8 scale=1.0
  #2  child.vls:2  encoder.self_attn: (no method: merges into the current one; adapter where there is none)
        set       granularity=vector heads=4
        overrides #1 base.vls:5 (merges into)
  #3  child.vls:2  decoder.cross_attn.v: lite
        defaults  activation=gelu_new init_down=default init_up=default r=96
"""


def test_check_errors(specs, capsys):
    (specs / "bad.vls").write_text("encoder.ffn: adaptr\nencoder.ffn: adapter hedas=4\n")
    status, out, err = run(capsys, "check", "bad.vls")
    assert status == 1 and out == ""
    assert err.startswith("2 problems in spec\n") and "bad.vls:1:14: error: unknown method 'adaptr'" in err
    assert "did you mean 'heads'?" in err


def test_check_several_files(specs, capsys):
    (specs / "bad.vls").write_text("encoder.ffn: adaptr\n")
    status, out, err = run(capsys, "check", "-q", "base.vls", "bad.vls")
    assert status == 1 and out == "" and "bad.vls:1:1" in err


def test_check_missing_file_is_a_spec_error(specs, capsys):
    status, out, err = run(capsys, "check", "nope.vls")
    assert status == 1 and "no such spec file: nope.vls" in err


def test_check_warnings(specs, capsys):
    (specs / "w.vls").write_text("encoder.ffn: lite\n*.ffn: adapter\n")
    status, out, err = run(capsys, "check", "w.vls")
    assert status == 0 and "w.vls: ok (1 warning)" in out and "warning: this statement has no effect" in err
    assert run(capsys, "check", "-W", "w.vls")[0] == 1


@pytest.mark.parametrize("argv", [["check"], ["fmt"], ["bogus"], ["check", "--bogus", "x.vls"], [],
                                  ["fmt", "base.vls", "--to", "json"]])
def test_usage_errors_exit_2(specs, capsys, argv):
    status, out, err = run(capsys, *argv)
    assert status == 2 and "usage:" in err


def test_help_and_version(capsys):
    assert run(capsys, "--help")[0] == 0
    status, out, _ = run(capsys, "--version")
    assert status == 0 and out.startswith("vlsurgery ")


def test_fmt_keeps_comments(specs, capsys):
    (specs / "c.vls").write_text("# header\nencoder.ffn:   adapter  r=8 # eight\n\n\nbackbone  'bart-base'\n# tail\n")
    status, out, err = run(capsys, "fmt", "c.vls")
    assert status == 0
    assert out == "# header\nbackbone bart-base\n\nencoder.ffn: adapter r=8  # eight\n\n# tail\n"


def test_fmt_to_yaml_and_back(specs, capsys):
    status, yaml_text, err = run(capsys, "fmt", "child.vls", "--to", "yaml")
    assert status == 0 and yaml_text.startswith("extends: base.vls\nsites:\n")
    (specs / "child.yaml").write_text(yaml_text)
    status, dsl_text, _ = run(capsys, "fmt", "child.yaml", "--to", "dsl")
    assert status == 0
    from vlsurgery.spec import parse
    assert parse(dsl_text) == parse(CHILD) == parse(yaml_text, format="yaml")


def test_fmt_check_and_in_place(specs, capsys):
    assert run(capsys, "fmt", "--check", "child.vls")[0] == 1
    status, _, err = run(capsys, "fmt", "-i", "child.vls")
    assert status == 0 and "reformatted child.vls" in err
    assert run(capsys, "fmt", "--check", "child.vls")[0] == 0
    assert run(capsys, "fmt", "--check", "child.vls", "--to", "yaml")[0] == 2


def test_fmt_syntax_error(specs, capsys):
    (specs / "s.vls").write_text("encoder.ffn adapter\n")
    status, out, err = run(capsys, "fmt", "s.vls")
    assert status == 1 and out == "" and "s.vls:1:13: error: unexpected name 'adapter'" in err


def test_fmt_formats_semantically_invalid_specs(specs, capsys):
    (specs / "u.vls").write_text("encoder.ffn:   frobnicate\n")
    status, out, _ = run(capsys, "fmt", "u.vls")
    assert status == 0 and out == "encoder.ffn: frobnicate\n"


def test_console_script_no_traceback(specs):
    (specs / "bin.vls").write_bytes(b"\x00\x01\x02")
    proc = subprocess.run([sys.executable, "-m", "vlsurgery.cli.main", "check", "bin.vls"],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "binary file" in proc.stderr and "Traceback" not in proc.stderr
