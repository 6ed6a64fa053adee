"""`vlsurgery diff`: golden output in text, Markdown and JSON; exit statuses (0 same, 1 different, 2 trouble).

Regenerate the golden files with ``VLSURGERY_REGEN_GOLDEN=1 pytest tests/diff/test_diff_cli.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vlsurgery.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden"
REGEN = bool(os.environ.get("VLSURGERY_REGEN_GOLDEN"))
BART = "specs/paper/bart-base/"

PAIRS = {
    "vl-pet-small-vs-large": [BART + "vl-pet-small.vls", BART + "vl-pet-large.vls"],
    "vl-adapter-vs-vl-pet-large": [BART + "vl-adapter.vls", BART + "vl-pet-large.vls"],
    "vl-pet-large-bart-vs-t5": [BART + "vl-pet-large.vls", "specs/paper/t5-base/vl-pet-large.vls"],
}
FORMATS = {"txt": [], "md": ["--markdown"], "json": ["--json"]}


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)


def run(capsys, *argv):
    status = main(["diff", *argv])
    out, err = capsys.readouterr()
    return status, out, err


# every format of the paper's pairs; the cross-backbone diff as text
GOLDEN_CASES = [(name, fmt) for name in PAIRS for fmt in FORMATS if fmt == "txt" or not name.endswith("bart-vs-t5")]


@pytest.mark.parametrize("name, fmt", GOLDEN_CASES)
def test_golden(capsys, name, fmt):
    status, out, err = run(capsys, *PAIRS[name], *FORMATS[fmt])
    assert status == 1, err
    path = GOLDEN / f"{name}.{fmt}"
    if REGEN:
        path.write_text(out)
    assert out == path.read_text()


def test_small_vs_large_reads_as_one_row(capsys):
    _, out, _ = run(capsys, *PAIRS["vl-pet-small-vs-large"])
    rows = [line for line in out.splitlines() if line.startswith(("~", "+", "-")) and not line.startswith("---")
            and not line.startswith("+++")]
    assert rows == [r for r in rows if "encoder[0:6].{self_attn,ffn}" in r and "gate: scalar(pool=all) -> matrix(r=96)" in r]
    assert len(rows) == 1 and "+1,761,396" in rows[0]


def test_json_is_the_documented_schema(capsys):
    _, out, _ = run(capsys, *PAIRS["vl-adapter-vs-vl-pet-large"], "--json")
    data = json.loads(out)
    assert data["schema"] == "vlsurgery.diff/1"
    assert set(data) == {"schema", "identical", "same_backbone", "a", "b", "trainable_delta", "total_delta", "sites",
                         "spec", "notes"}
    assert set(data["a"]) == {"spec", "backbone", "backbone_from", "trainable", "total", "trainable_percent"}
    assert {s["change"] for s in data["sites"]} == {"added", "removed", "changed"}
    site_keys = {"change", "where", "sites", "paths", "a", "b", "fields", "a_each", "b_each", "trainable_delta"}
    assert all(set(s) == site_keys for s in data["sites"])
    assert [c["what"] for c in data["spec"]] == ["train"]
    rows = sum(s["trainable_delta"] for s in data["sites"]) + sum(c["trainable_delta"] for c in data["spec"])
    assert rows == data["trainable_delta"] == data["b"]["trainable"] - data["a"]["trainable"]


def test_identical_exits_0(capsys):
    status, out, _ = run(capsys, BART + "vl-pet-large.vls", BART + "vl-pet-large.vls")
    assert status == 0 and "identical" in out


def test_quiet_prints_nothing(capsys):
    assert run(capsys, "-q", *PAIRS["vl-pet-small-vs-large"]) == (1, "", "")
    assert run(capsys, "-q", BART + "vl-pet.vls", BART + "vl-pet.vls") == (0, "", "")


def test_backbone_option_resolves_both_on_it(capsys):
    status, out, _ = run(capsys, "specs/examples/demo.vls", "specs/examples/demo-t5.vls", "--backbone", "tiny-t5")
    assert status == 0 and "backbone tiny-t5" in out


@pytest.mark.parametrize("argv", [
    ["specs/nope.vls", BART + "vl-pet.vls"],                        # missing file
    [BART + "vl-pet.vls", "tests/diff"],                            # a directory
    ["specs/examples/mixed.vls", BART + "vl-pet.vls", "-b", "tiny-bart"],  # does not fit the backbone
    [BART + "vl-pet.vls", BART + "vl-pet.vls", "-b", "no-such-backbone-xyz"],
    [BART + "vl-pet.vls", BART + "vl-pet.vls", "--json", "--markdown"],   # contradictory flags
    [BART + "vl-pet.vls"],                                           # missing argument
    [BART + "vl-pet.vls", BART + "vl-pet.vls", "--frobnicate"],
], ids=["missing", "directory", "resolution", "backbone", "flags", "argument", "unknown-flag"])
def test_trouble_exits_2(capsys, argv):
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == "" and err
    assert "Traceback" not in err


def test_spec_errors_exit_2_not_1(capsys, tmp_path):
    bad = tmp_path / "bad.vls"
    bad.write_text("backbone bart-base\nencoder.self_attn: adapter hedas=4\n")
    status, _, err = run(capsys, str(bad), BART + "vl-pet.vls")
    assert status == 2 and "hedas" in err and "did you mean 'heads'" in err


def test_neither_spec_names_a_backbone_exits_2(capsys, tmp_path):
    (tmp_path / "a.vls").write_text("encoder.ffn: adapter\n")
    (tmp_path / "b.vls").write_text("encoder.ffn: lite\n")
    status, _, err = run(capsys, str(tmp_path / "a.vls"), str(tmp_path / "b.vls"))
    assert status == 2 and "neither spec names a backbone" in err


def test_diff_is_listed_in_help(capsys):
    assert main(["--help"]) == 0
    assert "diff" in capsys.readouterr().out
