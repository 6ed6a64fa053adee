"""`vlsurgery plan` and `vlsurgery count`: golden output, JSON, exit statuses.

Regenerate the golden files with ``VLSURGERY_REGEN_GOLDEN=1 pytest tests/profiles/test_cli.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import helpers  # noqa: F401
from vlsurgery.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden"
REGEN = bool(os.environ.get("VLSURGERY_REGEN_GOLDEN"))


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("name, argv", [
    ("plan-demo-tiny-bart", ["plan", "specs/examples/demo.vls"]),
    ("count-demo-tiny-bart", ["count", "specs/examples/demo.vls"]),
    ("plan-demo-tiny-t5-gated", ["plan", "specs/examples/demo.vls", "--backbone", "tiny-t5-gated"]),
    ("count-lora-tiny-t5", ["count", "specs/examples/lora.vls", "--backbone", "tiny-t5"]),
])
def test_golden(capsys, name, argv):
    status, out, err = run(capsys, *argv)
    assert status == 0, err
    path = GOLDEN / f"{name}.txt"
    if REGEN:
        path.write_text(out)
    assert out == path.read_text()


def test_count_groups_layers_into_one_row(capsys):
    status, out, _ = run(capsys, "count", "specs/paper/bart-base/vl-pet-large.vls")
    assert status == 0
    assert "encoder[0:6].self_attn" in out and "adapter r=96 heads=4 gate=matrix(r=96)" in out
    assert "6 x 296,640" in out and "trainable 6,052,416 of 145,452,864" in out


@pytest.mark.parametrize("command", ["plan", "count"])
def test_json(capsys, command):
    status, out, _ = run(capsys, command, "specs/paper/t5-base/vl-pet-small.vls", "--json")
    data = json.loads(out)
    assert status == 0
    assert {"trainable", "total", "trainable_percent", "sites"} <= set(data)
    assert data["trainable_percent"] == 100 * data["trainable"] / data["total"]
    assert all({"path", "method", "trainable"} <= set(s) for s in data["sites"])
    assert sum(s["trainable"] for s in data["sites"]) + data["base_trainable"] + data["projector"]["parameters"] \
        == data["trainable"]
    if command == "plan":
        assert data["sites"][0]["x_point"] == "layer.0.layer_norm:in"


def test_errors_exit_1_with_position(capsys, tmp_path):
    spec = tmp_path / "bad.vls"
    spec.write_text("backbone tiny-t5\nencoder[7].ffn: adapter\ntrain *.bias\n")
    status, out, err = run(capsys, "count", str(spec))
    assert status == 1 and out == ""
    assert f"{spec}:2:1" in err or "bad.vls:2:1" in err
    assert "out of range" in err and "no bias" in err and "Traceback" not in err


def test_backbone_errors_exit_1(capsys):
    status, _, err = run(capsys, "plan", "specs/examples/demo.vls", "--backbone", "bart-bse")
    assert status == 1 and "bart-base" in err


def test_usage_exit_2(capsys):
    assert run(capsys, "count")[0] == 2
    assert run(capsys, "plan", "specs/examples/demo.vls", "--no-such-flag")[0] == 2


def test_warnings_go_to_stderr(capsys, tmp_path):
    spec = tmp_path / "w.vls"
    spec.write_text("backbone tiny-bart\nencoder.ffn: adapter r=8\nencoder.ffn: lite r=4\n")
    status, out, err = run(capsys, "count", str(spec))
    assert status == 0 and "warning:" in err and "warning:" not in out
