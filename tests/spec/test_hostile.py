"""Hostile and mistaken input (issue 10): no traceback, no hang, no file disclosure, no silent loss.

Each case names what it reproduces.  Every failure must be a project error (``SpecError``) that is
located where it can be, and quick: the limits of docs/limits.md bound the work.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import pytest

from vlsurgery.errors import LIMITS, SpecError, SpecFileError, SpecSyntaxError
from vlsurgery.spec import dumps, load, parse

SECRET = "TOP-SECRET-LINE: 7f3a"  # written into files a spec must not be able to read


def rendered(excinfo) -> str:
    return excinfo.value.render()


def refused(tmp_path, extends: str, **kw) -> str:
    (tmp_path / "top").mkdir(exist_ok=True)
    spec = tmp_path / "top" / "design.vls"
    spec.write_text(f'extends "{extends}"\nencoder.ffn: lite\n')
    with pytest.raises(SpecFileError) as info:
        load(spec, **kw)
    text = rendered(info)
    assert SECRET not in text
    return text


# ------------------------------------------------------------------------------------------
# 1. extends cannot read host files


def test_extends_absolute_system_file_is_not_read(tmp_path):
    text = refused(tmp_path, "/etc/passwd")
    assert "outside the places a spec may extend" in text and "root:" not in text


def test_extends_proc_is_not_read(tmp_path):
    for name in ("/proc/self/status", "/proc/self/environ", "/proc/self/cwd/design.vls"):
        text = refused(tmp_path, name)
        assert "outside the places a spec may extend" in text and "Pid:" not in text


def test_extends_dotdot_out_of_the_tree_is_refused(tmp_path):
    (tmp_path / "outside.vls").write_text(f"{SECRET}\n")
    text = refused(tmp_path, "../outside.vls")
    assert "outside the places a spec may extend" in text


def test_refusal_does_not_tell_whether_the_file_exists(tmp_path):
    (tmp_path / "aaaa.vls").write_text(f"{SECRET}\n")
    there = refused(tmp_path, "../aaaa.vls")
    missing = refused(tmp_path, "../bbbb.vls")
    assert there.replace("aaaa", "X") == missing.replace("bbbb", "X")


def test_extends_symlink_out_of_the_tree_is_refused(tmp_path):
    (tmp_path / "outside.vls").write_text(f"{SECRET}\n")
    (tmp_path / "top").mkdir()
    os.symlink(tmp_path / "outside.vls", tmp_path / "top" / "base.vls")
    assert "outside the places a spec may extend" in refused(tmp_path, "base.vls")


def test_extends_never_reads_a_file_without_a_spec_suffix(tmp_path):
    (tmp_path / "top").mkdir()
    (tmp_path / "top" / "notes").write_text(f"{SECRET}\n")
    (tmp_path / "top" / "notes.txt").write_text(f"{SECRET}\n")
    assert "no such spec" in refused(tmp_path, "notes")
    assert "no such spec" in refused(tmp_path, "notes.txt")


def test_inside_the_tree_and_allowed_roots_work(tmp_path):
    (tmp_path / "top" / "sub").mkdir(parents=True)
    (tmp_path / "top" / "base.vls").write_text("backbone bart-base\n")
    (tmp_path / "top" / "sub" / "child.vls").write_text('extends "../base.vls"\nencoder.ffn: lite\n')
    (tmp_path / "top" / "design.vls").write_text('extends "sub/child.vls"\n')
    assert load(tmp_path / "top" / "design.vls").backbone == "bart-base"  # .. inside the tree of the spec loaded
    with pytest.raises(SpecFileError, match="outside the places"):  # loaded on its own, sub/ is the tree
        load(tmp_path / "top" / "sub" / "child.vls")
    assert load(tmp_path / "top" / "sub" / "child.vls", roots=[tmp_path / "top"]).backbone == "bart-base"
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "b.vls").write_text("backbone t5-base\n")
    (tmp_path / "top" / "abs.vls").write_text(f'extends "{tmp_path / "shared" / "b.vls"}"\n')
    with pytest.raises(SpecFileError, match="outside the places"):
        load(tmp_path / "top" / "abs.vls")
    assert load(tmp_path / "top" / "abs.vls", roots=[tmp_path / "shared"]).backbone == "t5-base"


# ------------------------------------------------------------------------------------------
# 3, 4. bounded work


def test_missing_extends_under_the_root_does_not_scan_the_filesystem(tmp_path, monkeypatch):
    def no_scan(*args, **kwargs):
        raise AssertionError("a recursive scan")

    monkeypatch.setattr(Path, "rglob", no_scan)
    monkeypatch.setattr(os, "walk", no_scan)
    (tmp_path / "top").mkdir()
    (tmp_path / "top" / "design.vls").write_text('extends "nonexistent.vls"\n')
    (tmp_path / "top" / "bitfit.vls").write_text("backbone bart-base\n")
    with pytest.raises(SpecFileError) as info:
        load(tmp_path / "top" / "design.vls")
    assert "no such spec" in rendered(info) and "did you mean" not in rendered(info)  # nothing unrelated


def test_missing_extends_suggests_a_close_name(tmp_path):
    (tmp_path / "base.vls").write_text("backbone bart-base\n")
    (tmp_path / "c.vls").write_text('extends "bsae.vls"\n')
    with pytest.raises(SpecFileError, match="did you mean 'base.vls'"):
        load(tmp_path / "c.vls")


def test_oversized_spec_is_refused_unread(tmp_path):
    big = tmp_path / "big.vls"
    big.write_bytes(b"encoder.ffn: lite\n" * 3_000_000)  # 54 MB
    start = time.perf_counter()
    with pytest.raises(SpecFileError, match="larger than a spec may be"):
        load(big)
    with pytest.raises(SpecFileError, match="larger than a spec may be"):
        parse("x" * (LIMITS.spec_bytes + 1))
    assert time.perf_counter() - start < 2


def test_devices_and_fifos_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo.vls"
    os.mkfifo(fifo)
    results = {}

    def attempt(path):
        try:
            load(path)
        except SpecFileError as e:
            results[path] = e.render()

    for path in (str(fifo), "/dev/zero"):
        worker = threading.Thread(target=attempt, args=(path,), daemon=True)
        worker.start()
        worker.join(5)
        assert not worker.is_alive(), f"reading {path} blocked"
    assert "is a FIFO, not a spec file" in results[str(fifo)]
    assert "is a character device, not a spec file" in results["/dev/zero"]


def test_too_many_statements(tmp_path):
    with pytest.raises(SpecSyntaxError, match="more than 1,000 statements") as info:
        parse("encoder.ffn: lite\n" * (LIMITS.statements + 1), "many.vls")
    assert f"many.vls:{LIMITS.statements + 1}:1" in rendered(info)
    yaml_text = "sites:\n" + "  - at: encoder.ffn\n" * (LIMITS.statements + 1)
    with pytest.raises(SpecError, match="sites has 1,001 entries"):
        parse(yaml_text, "many.yaml")
    (tmp_path / "base.vls").write_text("encoder.ffn: lite\n" * 600)
    (tmp_path / "child.vls").write_text('extends "base.vls"\n' + "decoder.ffn: lite\n" * 600)
    with pytest.raises(SpecError, match="the design has 1,200 statements"):
        load(tmp_path / "child.vls")


def test_extends_chain_depth(tmp_path):
    for i in range(LIMITS.extends_depth + 1):
        (tmp_path / f"s{i}.vls").write_text(f'extends "s{i + 1}.vls"\n' if i < LIMITS.extends_depth else "")
    with pytest.raises(SpecError, match=f"extends chain longer than {LIMITS.extends_depth} files"):
        load(tmp_path / "s0.vls")


def test_error_recovery_is_bounded():
    text = "\n".join(f"encoder.ffn adapter{i}" for i in range(500))
    start = time.perf_counter()
    with pytest.raises(SpecSyntaxError) as info:
        parse(text, "bad.vls")
    assert time.perf_counter() - start < 5
    messages = [p.message for p in info.value.problems]
    assert len(messages) == LIMITS.syntax_errors + 1
    assert any(f"stopped reading after {LIMITS.syntax_errors}" in m for m in messages)


def test_error_recovery_positions_after_a_broken_statement():
    with pytest.raises(SpecError) as info:
        parse("encoder.ffn: lite; encoder.ffn adapter; decoder.ffn: lte\nlet r =\n", "x.vls")
    found = [(p.span.line, p.span.column, p.message) for p in info.value.problems]
    assert found[:3] == [(1, 32, "unexpected name 'adapter'"), (1, 54, "unknown method 'lte'"),
                         (2, 8, "unexpected end of line")]


def test_rendering_many_problems_is_bounded():
    line = "encoder.ffn: lite " + "bogus=1 " * 7000  # one 56 kB line, thousands of problems
    with pytest.raises(SpecError) as info:
        parse(line, "wide.vls")
    start = time.perf_counter()
    text = rendered(info)
    assert time.perf_counter() - start < 1
    assert f"more problems not shown (a report shows the first {LIMITS.shown})" in text
    assert max(len(x) for x in text.split("\n")) < LIMITS.shown_line + 40


def test_long_lines_are_cut_around_the_column():
    with pytest.raises(SpecError) as info:
        parse("encoder.ffn: lite r=4" + " " * 300 + "bad=1 " + "a" * 300 + "=1\n", "x.vls")
    lines = rendered(info).split("\n")
    quoted, caret = lines[lines.index(next(x for x in lines if "'bad'" in x)) + 1:][:2]
    assert quoted.startswith("  | ...") and quoted.endswith("...")
    assert quoted[caret.index("^"):caret.index("^") + 5] == "bad=1"


# ------------------------------------------------------------------------------------------
# 5, 6. numbers: one range for the whole language, located errors, no traceback


@pytest.mark.parametrize("text, column, fragment", [
    ("encoder.ffn: lite r=" + "9" * 5000, 21, "is too long"),                   # int-string limit
    ("encoder[" + "1" * 5000 + "].ffn: lite", 9, "is too long"),                # layer index
    ("encoder[1:" + "1" * 30 + "].ffn: lite", 11, "out of range"),
    ("encoder.ffn: adapter init=1e999", 27, "must be a finite number"),       # ValueError in the printer
    ("encoder.ffn: adapter scale=1" + "0" * 400, 28, "is too long"),          # OverflowError
    ("encoder.ffn: adapter scale=1" + "0" * 30, 28, "out of range"),
    ("encoder.ffn: lite r=1e400", 21, "must be a finite number"),
    ("encoder.ffn: lite r=1e-400", 21, "rounds to 0"),
    ("let r = -1" + "0" * 19, 9, "out of range"),
    ("encoder.ffn: adapter init_up=normal(1e999)", 37, "must be a finite number"),
])
def test_dsl_numbers_out_of_range(text, column, fragment):
    with pytest.raises(SpecSyntaxError) as info:
        parse(text, "n.vls")
    problem = info.value.problems[0]
    assert fragment in problem.message and (problem.span.line, problem.span.column) == (1, column)
    assert "between -10**18 and 10**18" in rendered(info)


@pytest.mark.parametrize("text, fragment", [
    ("let: {r: " + "9" * 5000 + "}\n", "is too long"),
    ("let: {r: 0x" + "f" * 5000 + "}\n", "is too long"),                       # YAML hex int
    ("let: {r: 0x" + "f" * 20 + "}\n", "out of range"),
    ("let: {r: 1e400}\n", "must be a finite number"),
    ("let: {r: .inf}\n", "must be a finite number"),
    ("sites:\n  - {at: encoder.ffn, method: adapter, scale: 1" + "0" * 400 + "}\n", "is too long"),
    ("sites:\n  - {at: encoder.ffn, method: adapter, init_up: normal(1e999)}\n", "must be a finite number"),
])
def test_yaml_numbers_out_of_range(text, fragment):
    with pytest.raises(SpecError) as info:
        parse(text, "n.yaml")
    assert fragment in info.value.problems[0].message and info.value.problems[0].span is not None


def test_numbers_at_the_edge_of_the_range_round_trip():
    spec = parse(f"let a = {10 ** 18}\nlet b = -{10 ** 18}\nlet c = 1e18\nlet d = 1e-300\n")
    assert parse(dumps(spec)) == spec == parse(dumps(spec, "yaml"), format="yaml")


# ------------------------------------------------------------------------------------------
# 7. YAML and names that crashed the readers


def test_deeply_nested_yaml():
    with pytest.raises(SpecSyntaxError) as info:
        parse("x: " + "[" * 500 + "]" * 500 + "\n", "deep.yaml")
    assert f"nested more than {LIMITS.yaml_depth} deep" in rendered(info) and "deep.yaml:1:" in rendered(info)


def test_yaml_escape_beyond_unicode():
    with pytest.raises(SpecSyntaxError) as info:
        parse('backbone: "\\U00110000"\n', "u.yaml")
    assert "u.yaml:1:12: error: an escape in a string is not a valid character" in rendered(info)


def test_yaml_aliases_and_unquoted_star():
    with pytest.raises(SpecSyntaxError) as info:
        parse("sites:\n  - at: *.ffn\n    method: lite\n", "a.yaml")
    assert "a.yaml:2:9" in rendered(info) and 'at: "*.ffn"' in rendered(info)
    with pytest.raises(SpecSyntaxError, match="aliases"):
        parse("let: &x {r: 1}\nprojector: *x\n", "a.yaml")


def test_long_extends_name(tmp_path):
    for name in ("a" * 256, "x/" * 600):
        (tmp_path / "c.vls").write_text(f'extends "{name}"\n')
        with pytest.raises(SpecFileError, match="is not a usable name") as info:
            load(tmp_path / "c.vls")
        assert "c.vls:1:1" in rendered(info) and len(rendered(info)) < 1000


# ------------------------------------------------------------------------------------------
# 18. mistakes a new user makes


def test_layer_step_says_steps_are_not_supported():
    with pytest.raises(SpecSyntaxError) as info:
        parse("encoder[0:6:2].ffn: lite\n", "s.vls")
    text = rendered(info)
    assert "s.vls:1:12: error: a layer range has no step" in text and "encoder[0,2,4]" in text
    with pytest.raises(SpecError, match="a layer range has no step"):
        parse("sites:\n  - at: encoder[::2].ffn\n", "s.yaml")


def test_yaml_misspelt_site_key():
    with pytest.raises(SpecError) as info:
        parse("sites:\n  - at: encoder.ffn\n    methd: lite\n", "k.yaml")
    assert "k.yaml:3:5: error: unknown key 'methd' in a site" in rendered(info)
    assert "did you mean 'method'?" in rendered(info)


def test_binary_error_points_at_the_first_byte_that_is_not_text():
    with pytest.raises(SpecFileError) as info:
        parse(b"backbone bart-base\nlet r = \xe9\x00\n", "b.vls")
    assert "b.vls:2:9: error: b.vls is not UTF-8 text (byte 0xe9)" in rendered(info)
    with pytest.raises(SpecFileError, match="a NUL byte") as info:
        parse(b"backbone bart-base\nlet r = \x00\xe9\n", "b.vls")
    assert "b.vls:2:9" in rendered(info)


def test_shipped_specs_are_canonical():
    from vlsurgery.cli.fmt import format_text
    from vlsurgery.resources import spec_library

    for path in sorted(spec_library().rglob("*.vls")):
        data = path.read_bytes()
        assert format_text(data, str(path), None)[0] == data.decode(), f"{path.name} is not in canonical form"


def test_formatter_aligns_trailing_comments():
    from vlsurgery.cli.fmt import format_text

    out = format_text("let r = 96 # width\nlet r_v = 8 # value width\n", "x.vls", None)[0]
    assert out == "let r = 96   # width\nlet r_v = 8  # value width\n"
    assert format_text(out, "x.vls", None)[0] == out


def test_no_python_traceback_text_in_messages():
    cases = ["encoder.ffn: lite r=1e999", "x: " + "{a: " * 100, "encoder[0:6:2]: lite", "\x00"]
    for text in cases:
        with pytest.raises(SpecError) as info:
            parse(text, "t.yaml" if text.startswith("x:") else "t.vls")
        assert not re.search(r"Traceback|Error\(|lark\.|yaml\.", rendered(info))
