"""The shipped library by name (``lib:NAME``) from anywhere, ``vlsurgery specs``, and the command
line's behaviour towards its reader (issue 10, items 9 and 16)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from vlsurgery.cli.main import main
from vlsurgery.errors import SpecFileError
from vlsurgery.resources import library_names, library_specs, spec_library
from vlsurgery.spec import load


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A working directory that is not a clone: relative library paths do not exist here."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_load_by_library_name_anywhere(elsewhere):
    spec = load("lib:paper/bart-base/vl-pet-large.vls")
    assert spec == load(spec_library() / "paper/bart-base/vl-pet-large.vls")
    assert load("lib:examples/lora") == load(spec_library() / "examples/lora.vls")  # suffix optional


def test_unknown_library_name_suggests_a_close_one(elsewhere):
    with pytest.raises(SpecFileError) as info:
        load("lib:paper/bart-base/vl-pet-lrage.vls")
    text = info.value.render()
    assert "no such spec in the shipped library: lib:paper/bart-base/vl-pet-lrage.vls" in text
    assert "did you mean 'paper/bart-base/vl-pet-large.vls'?" in text


def test_a_missing_path_that_the_library_has_gets_the_lib_name(elsewhere, capsys):
    status, out, err = run(capsys, "count", "paper/bart-base/vl-pet-large.vls")
    assert status == 1 and "the shipped library has it: lib:paper/bart-base/vl-pet-large.vls" in err


def test_commands_take_library_names(elsewhere, capsys):
    status, out, err = run(capsys, "count", "--json", "lib:paper/bart-base/vl-pet-large.vls")
    assert status == 0 and json.loads(out)["trainable_percent"] > 0
    status, out, err = run(capsys, "check", "-q", "lib:paper/bart-base/vl-pet-large.vls")
    assert (status, out, err) == (0, "", "")
    status, out, _ = run(capsys, "check", "lib:paper/bart-base/vl-pet-large.vls")
    assert "extends    lib:paper/bart-base/vl-pet-large.vls -> lib:paper/bart-base/vl-pet.vls" in out
    status, out, _ = run(capsys, "fmt", "lib:examples/lora.vls")
    assert status == 0 and out == (spec_library() / "examples/lora.vls").read_text()
    status, _, err = run(capsys, "fmt", "-i", "lib:examples/lora.vls")
    assert status == 2 and "read-only" in err


def test_extends_a_library_name(elsewhere):
    (elsewhere / "mine.vls").write_text('extends "lib:paper/bart-base/vl-pet.vls"\nlet r = 48\n')
    spec = load(elsewhere / "mine.vls")
    assert spec.backbone == "bart-base" and ("r", 48) in [(p.key, p.value) for p in spec.lets]


def test_specs_lists_every_shipped_design(capsys):
    status, out, err = run(capsys, "specs")
    lines = out.splitlines()
    names = [line.split()[0] for line in lines]
    expected = sorted(p.relative_to(spec_library()).as_posix() for p in spec_library().rglob("*.vls"))
    assert status == 0 and names == ["lib:" + n for n in expected] == ["lib:" + n for n in library_names()]
    assert all(len(line.split(None, 1)) == 2 for line in lines), "every design has a description"
    assert dict(library_specs())["examples/bitfit.vls"].startswith("BitFit: train every bias")
    status, out, _ = run(capsys, "specs", "paper/t5-base")
    assert status == 0 and all(line.startswith("lib:paper/t5-base/") for line in out.splitlines())
    assert run(capsys, "specs", "nothing/")[0] == 1


def test_demo_takes_a_library_name(elsewhere, capsys):
    status, out, err = run(capsys, "demo", "--spec", "lib:examples/demo.vls", "--steps", "1", "--baseline-steps", "1")
    assert status == 0, err
    assert "parameters of lib:examples/demo.vls on tiny-bart" in out and "trained 1 step in" in out


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "vlsurgery.cli.main", *args], capture_output=True, text=True,
                          timeout=120, **kw)


def test_broken_pipe_ends_quietly():
    """`vlsurgery count --json SPEC | head -1`: the reader is gone before the output is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "vlsurgery.cli.main", "count", "--json",
                               "lib:paper/bart-base/vl-pet-large.vls"], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=120)
    finally:
        os.close(write_end)
    assert proc.stderr == "" and proc.returncode == 141


def test_testing_without_the_test_extra_says_what_to_install():
    code = "import sys; sys.modules['hypothesis'] = None; import vlsurgery.testing"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "MissingExtraError" in proc.stderr and "pip install 'vlsurgery[test]'" in proc.stderr
