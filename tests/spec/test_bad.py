"""Bad specs: every problem reported at once, positioned, in words (golden messages)."""

from __future__ import annotations

import pytest

from vlsurgery.errors import SpecError, SpecFileError, SpecSyntaxError
from vlsurgery.spec import load, parse


def error_text(text, source="design.vls", format=None, cls=SpecError):
    with pytest.raises(cls) as info:
        parse(text, source, format=format)
    return info.value.render()


# ------------------------------------------------------------------------------------------
# Golden: the full rendered text

GOLDEN = [
    ("encoder.self_attn: adaptr r=8\n", """\
design.vls:1:20: error: unknown method 'adaptr'
  | encoder.self_attn: adaptr r=8
  |                    ^^^^^^
  = expected one of: adapter, compacter, gate, ia3, lite, lora, none, prompt
  = did you mean 'adapter'?"""),
    ("encoder.self_attn: adapter hedas=4\n", """\
design.vls:1:28: error: unknown parameter 'hedas' for method 'adapter'
  | encoder.self_attn: adapter hedas=4
  |                            ^^^^^^^
  = expected one of: activation, gate_init, gate_pool, gate_r, granularity, heads, init, init_down, init_gate, init_gate_down, init_up, placement, r, reduction, scale
  = did you mean 'heads'?"""),
    ("encoder.ffn adapter\nlet r = 96\n", """\
design.vls:1:13: error: unexpected name 'adapter'
  | encoder.ffn adapter
  |             ^^^^^^^
  = expected one of: ',', '.', ':', '[', ';' or a new line
  = a statement is `address: method key=value ...`; is the ':' after the address missing?"""),
    ("backbone bart-base\nencoder.ffn: adapter r=96 heads=5\nencoder.cross_attn: lite\n", """\
2 problems in spec
design.vls:2:27: error: heads=5 must divide r=96 (each head is a d -> r/heads projection)
  | encoder.ffn: adapter r=96 heads=5
  |                           ^^^^^^^
design.vls:3:9: error: the encoder stack has no cross_attn
  | encoder.cross_attn: lite
  |         ^^^^^^^^^^
  = expected one of: ffn, self_attn"""),
    ("sites:\n  - at: encoder.ffn\n    method: lite\n    r: !!python/object:os.system 3\n", """\
design.yaml:4:8: error: YAML tag '!!python/object:os.system' is not allowed
  |     r: !!python/object:os.system 3
  |        ^^^^^^^^^^^^^^^^^^^^^^^^^^^
  = expected plain values: numbers, true/false, names, strings, lists and mappings"""),
]


@pytest.mark.parametrize("text, expected", GOLDEN, ids=range(len(GOLDEN)))
def test_golden(text, expected):
    source = "design.yaml" if expected.startswith("design.yaml") else "design.vls"
    assert error_text(text, source) == expected


# ------------------------------------------------------------------------------------------
# Substrings: (text, [fragments that must appear]); DSL unless the text is YAML

BAD = [
    # syntax
    ("encoder.ffn: adapter r=", ["1:24", "unexpected end of text", "a value"]),
    ("let r = \nencoder.ffn: lite", ["1:9", "unexpected end of line"]),
    ("encoder[1:a].ffn: lite", ["1:11", "unexpected name 'a'", "']'"]),
    ("encoder.ffn: adapter r=@", ["unexpected character '@'"]),
    ('backbone "bart', ["unterminated string"]),
    ("x: y=$", ["'$' must be followed by the name of a let binding"]),
    ("encoder.ffn: adapter r=4 =5", ["unexpected character '='", "key=value"]),
    ("encoder..ffn: lite", ["unexpected character '.'", "'*', '{', a name"]),
    # every broken statement at once, and the valid ones still validated
    ("encoder.ffn adapter\nlet r = \nencoder.ffn: adaptr", ["3 problems", "1:13", "2:9", "3:1", "did you mean 'adapter'"]),
    # addresses
    ("encodr.ffn: lite", ["unknown stack 'encodr'", "did you mean 'encoder'"]),
    ("self_attn: lite", ["unknown stack 'self_attn'", "encoder.self_attn or *.self_attn"]),
    ("encoder.fnn: lite", ["unknown sublayer 'fnn'", "did you mean 'ffn'"]),
    ("encoder.ffn.q: lora", ["ffn has no projection 'q'", "in, out"]),
    ("encoder.self_attn.qq: lora", ["unknown projection 'qq'", "did you mean 'q'"]),
    ("encoder.ffn[0]: lite", ["only allowed on the stack segment", "encoder[0].ffn"]),
    ("encoder.self_attn.q.x: lora", ["too many segments"]),
    ("encoder[4:2].ffn: lite", ["selects no layers"]),
    ("encoder[0].input: prompt", ["a stack's input has no layers"]),
    ("encoder.{input,ffn}: prompt", ["'input' cannot be combined"]),
    ("encoder.input.q: prompt", ["a stack's input has no parts"]),
    # methods and parameters
    ("encoder.ffn: lora", ["'lora' cannot be placed on sublayers"]),
    ("encoder.self_attn.q: prompt", ["'prompt' cannot be placed on projections"]),
    ("encoder.input: granularity=vector", ["no method given", "'adapter' cannot be placed"]),
    ("encoder.ffn: adapter granularity=huge", ["'huge' is not a valid granularity", "middley"]),
    ("encoder.ffn: adapter granularity=vectr", ["did you mean 'vector'"]),
    ("encoder.ffn: adapter r=0", ["r=0 is out of range, must be >= 1"]),
    ("encoder.ffn: adapter r=1.5", ["r must be an integer >= 1, found 1.5"]),
    ("encoder.ffn: adapter r=\"8\"", ["r must be an integer"]),
    ("encoder.ffn: compacter shared=1", ["shared must be true or false"]),
    ("encoder.self_attn.q: lora dropout=1.5", ["dropout=1.5 is out of range, must be <= 1.0"]),
    ("encoder.ffn: adapter r=8 r=16", ["duplicate parameter 'r'", "the first is at design.vls:1:22"]),
    ("encoder.ffn: adapter gate_r=8", ["gate_r only applies to granularity=matrix"]),
    ("encoder.ffn: none r=8", ["unknown parameter 'r' for method 'none'", "no parameters"]),
    ("encoder.ffn: bogus=1", ["unknown parameter 'bogus' (no method that fits"]),
    ("encoder.ffn: init=sideways", ["is not a valid init"]),
    # lets and refs
    ("encoder.ffn: adapter r=$rr\nlet r = 8", ["undefined reference $rr", "did you mean 'r'"]),
    ("let r = 8\nlet r = 9", ["'r' is bound twice", "the first is at design.vls:1:1"]),
    ("let a = $b", ["a let value must be a literal"]),
    ("let g = huge\nencoder.ffn: adapter granularity=$g", ["'huge' is not a valid granularity (from $g)"]),
    # declarations
    ("backbone a\nbackbone b", ["duplicate backbone declaration", "the first is at design.vls:1:1"]),
    ("projector\nprojector images=1", ["duplicate projector declaration"]),
    ('extends "a.vls"\nextends "b.vls"', ["duplicate extends declaration"]),
    ("projector feat_dim=0 colour=1", ["feat_dim=0 is out of range", "unknown parameter 'colour' for the projector"]),
    ("backbone ''", ["backbone must name something", "1:1"]),
    ("train encoder", ["a train target must be projector, all, or an address ending in layernorm or bias"]),
    ("train projectr", ["did you mean 'projector'"]),
    ("train encoder.self_attn.q.layernorm", ["a projection has no layer norm"]),
]

BAD_YAML = [
    ("- a\n- b\n", ["a YAML spec must be a mapping"]),
    ("backbone: x\nbackbone: y\n", ["2:1", "duplicate key 'backbone'", "the first is at design.yaml:1:1"]),
    ("backbne: x\n", ["unknown key 'backbne'", "did you mean 'backbone'"]),
    ("a: [1\n", ["not valid YAML"]),
    ("sites:\n  - method: lite\n", ["a site needs 'at:'"]),
    ("sites:\n  - at: encoder.ffn\n    r: [1]\n", ["must be a single value"]),
    ("sites:\n  - at: \"encoder[0:2.ffn\"\n", ["2:21", "bad address", "unexpected character '.'"]),
    ("let: {r: 96}\nsites: [{at: encoder.ffn, method: adapter, r: $s}]\n", ["undefined reference $s"]),
    ("base: &a {x: 1}\nprojector:\n  <<: *a\n", ["merge keys (<<) are not supported"]),
    ("sites: {at: x}\n", ["sites must be a list"]),
    ("let: {r: .inf}\n", ["must be a finite number"]),
    ("backbone: 3\n", ["backbone must be a name or a path"]),
    ("projector: !!set {a, b}\n", ["YAML tag '!!set' is not allowed"]),
    ("backbone: !!binary aGVsbG8=\n", ["YAML tag '!!binary' is not allowed"]),
    ("%TAG !e! tag:example.com,2000:\n---\nbackbone: !e!x y\n", ["is not allowed"]),
    ("backbone: x\n---\nbackbone: y\n", ["not valid YAML", "single document"]),
    ("train: [encoder.bogus]\n", ["a train target must be"]),
]


@pytest.mark.parametrize("source, text, fragments", [("design.vls", t, f) for t, f in BAD]
                         + [("design.yaml", t, f) for t, f in BAD_YAML], ids=lambda v: str(v)[:40])
def test_bad(source, text, fragments):
    rendered = error_text(text, source)
    for fragment in fragments:
        assert fragment in rendered, rendered
    assert "Traceback" not in rendered


def test_errors_are_value_errors():
    with pytest.raises(ValueError):
        parse("encoder.ffn: nope")


@pytest.mark.parametrize("data, fragment", [
    (b"\xff\xfeb\x00a\x00", "not UTF-8 text (byte 0xff)"),  # the first byte that is not UTF-8 text, not the NUL
    (b"backbone a\x00\xff", "binary file"),
    (b"backbone caf\xe9\n", "not UTF-8 text (byte 0xe9)"),
    ("backbone a\x00", "NUL"),
    ("backbone: a\x07\n", "character YAML does not allow"),
])
def test_not_text(data, fragment):
    with pytest.raises(SpecError) as info:
        parse(data, "x.yaml" if "YAML" in fragment else "x.vls")
    assert fragment in info.value.render()


def test_missing_file(tmp_path):
    with pytest.raises(SpecFileError) as info:
        load(tmp_path / "nope.vls")
    assert "no such spec file" in str(info.value)
    assert isinstance(info.value, OSError) and isinstance(info.value, ValueError)


def test_missing_extends(tmp_path):
    (tmp_path / "base.vls").write_text("backbone x\n")
    (tmp_path / "c.vls").write_text('# child\nextends "bsae.vls"\n')
    with pytest.raises(SpecError) as info:
        load(tmp_path / "c.vls")
    text = info.value.render()
    assert "c.vls:2:1" in text and "extends 'bsae.vls': no such spec" in text and "did you mean 'base.vls'" in text


def test_extends_cycle(tmp_path):
    (tmp_path / "a.vls").write_text('extends "b.vls"\n')
    (tmp_path / "b.vls").write_text('backbone x\nextends "a.vls"\n')
    with pytest.raises(SpecError) as info:
        load(tmp_path / "a.vls")
    text = info.value.render()
    assert "extends cycle: " in text and "a.vls -> " in text and "b.vls -> " in text and "b.vls:2:1" in text


def test_self_extends(tmp_path):
    (tmp_path / "a.vls").write_text('extends "a.vls"\n')
    with pytest.raises(SpecError, match="extends cycle"):
        load(tmp_path / "a.vls")


def test_problems_in_several_files_at_once(tmp_path):
    (tmp_path / "base.vls").write_text("encoder.ffn: adaptr\n")
    (tmp_path / "c.vls").write_text('extends "base.vls"\nencoder.ffn: lite rr=1\n')
    with pytest.raises(SpecError) as info:
        load(tmp_path / "c.vls")
    text = info.value.render()
    assert "base.vls:1:1" in text and "c.vls:2:19" in text and "  | encoder.ffn: adaptr" in text


def test_merged_spec_is_checked(tmp_path):
    (tmp_path / "base.vls").write_text("let h = 4\nencoder.ffn: adapter r=96 heads=$h\n")
    (tmp_path / "c.vls").write_text('extends "base.vls"\nlet h = 5\n')
    with pytest.raises(SpecError, match="heads=5 must divide r=96"):
        load(tmp_path / "c.vls")


def test_parse_defers_refs_when_extending():
    spec = parse('extends "base.vls"\nencoder.ffn: adapter r=$r')  # $r may come from the base
    assert spec.extends == "base.vls"


def test_warnings_do_not_raise():
    from vlsurgery.spec import validate
    spec = parse("encoder.ffn: lite\n*.ffn: adapter\nlet unused = 1\nencoder[1,1].ffn: none")
    messages = [p.message for p in validate(spec)]
    assert any("no effect" in m for m in messages)
    assert any("never used" in m for m in messages)
    assert any("selected twice" in m for m in messages)


def test_error_classes():
    with pytest.raises(SpecSyntaxError):
        parse("encoder.ffn adapter")
    with pytest.raises(SpecSyntaxError):
        parse("a: [1", format="yaml")
    with pytest.raises(SpecError) as info:
        parse("encoder.ffn: nope")
    assert not isinstance(info.value, SpecSyntaxError)


# ------------------------------------------------------------------------------------------
# A statement without a method where no method remains means the default method ('adapter'),
# which cannot go on a stack's input: every order of statements that reaches that is refused,
# by validation and by resolution, at the statement.

NO_METHOD_LEFT = [
    ("encoder.input: none\nencoder.input:\n", 2, "the `none` at design.vls:1:1 leaves it empty"),
    ("encoder.input: prompt length=4\nencoder.input: none\nencoder.input: length=3\n", 3,
     "the `none` at design.vls:2:1 leaves it empty"),
    ("encoder.input: prompt\n*.input: none\nencoder.input:\n", 3, "the `none` at design.vls:2:1"),
    ("encoder.input: prompt\n{encoder}.input: none\n*.input: length=2\n", 3, "the `none` at design.vls:2:1"),
    ("encoder.input: none\nencoder.input: prompt\nencoder.input: none\nencoder.input: init=normal\n", 4,
     "the `none` at design.vls:3:1"),
    ("encoder.input: lora\nencoder.input:\n", 2, "the default method 'adapter' cannot be placed on a stack's input"),
]


@pytest.mark.parametrize("text, line, fragment", NO_METHOD_LEFT, ids=range(len(NO_METHOD_LEFT)))
def test_no_method_where_none_remains_is_refused(text, line, fragment):
    with pytest.raises(SpecError) as info:
        parse(text, "design.vls")
    problems = [p for p in info.value.problems if "no method given" in p.message]
    assert [p.span.line for p in problems] == [line] and fragment in problems[0].message
    assert problems[0].expected == "a method for these sites, e.g. prompt"


@pytest.mark.parametrize("text", ["encoder.input: prompt\nencoder.input: length=3\n",
                                  "encoder.input: none\nencoder.input: prompt\nencoder.input: length=3\n",
                                  "encoder.ffn: none\nencoder.ffn:\nencoder.self_attn.q: lora\n"
                                  "encoder.self_attn.q: none\nencoder.self_attn.q: r=4\n",
                                  "encoder[0:2].ffn: none\nencoder.ffn: r=8\n"])
def test_no_method_where_the_default_fits_or_a_method_remains_is_fine(text):
    spec = parse(text + "backbone tiny-t5\n", "ok.vls")
    from vlsurgery.planning import plan
    assert plan(spec).sites


def test_no_method_after_a_none_in_this_file_is_refused_before_merging(tmp_path):
    (tmp_path / "base.vls").write_text("backbone tiny-t5\nencoder.input: prompt\n")
    (tmp_path / "child.vls").write_text('extends "base.vls"\nencoder.input: none\nencoder.input: length=3\n')
    with pytest.raises(SpecError, match="leaves it empty") as info:
        parse((tmp_path / "child.vls").read_text(), str(tmp_path / "child.vls"))
    assert info.value.problems[0].span.line == 3
    with pytest.raises(SpecError, match="leaves it empty"):
        load(tmp_path / "child.vls")


def test_no_method_over_a_base_that_removed_the_input_is_refused_once_merged(tmp_path):
    (tmp_path / "base.vls").write_text("backbone tiny-t5\nencoder.input: prompt\nencoder.input: none\n")
    (tmp_path / "child.vls").write_text('extends "base.vls"\nencoder.input: length=3\n')
    parse((tmp_path / "child.vls").read_text(), str(tmp_path / "child.vls"))  # alone: the base may set a method
    with pytest.raises(SpecError, match="leaves it empty") as info:
        load(tmp_path / "child.vls")
    problem = next(p for p in info.value.problems if "no method given" in p.message)
    assert problem.span.source.endswith("child.vls") and problem.span.line == 2
    (tmp_path / "ok.vls").write_text('extends "base.vls"\nencoder.input: prompt length=3\n')
    load(tmp_path / "ok.vls")


@pytest.mark.parametrize("methods", [("none", None), (None,), ("prompt", "none", None)])
def test_resolution_refuses_it_too_when_validation_was_skipped(methods):
    from dataclasses import replace

    from vlsurgery.errors import ResolutionError
    from vlsurgery.planning.resolve import resolve
    from vlsurgery.spec import Statement

    base = parse("backbone tiny-t5\nencoder.input: prompt\n", "r.vls")
    target, span = base.statements[0].target, base.statements[0].span
    spec = replace(base, statements=tuple(Statement(target, m, span=span) for m in methods))
    with pytest.raises(ResolutionError) as info:
        resolve(spec)
    [problem] = info.value.problems
    assert problem.message.startswith("no method given, and encoder.input has none here")
    assert "the default method 'adapter' cannot be placed on an input site (at encoder.input)" in problem.message
    assert problem.span == span and problem.hint == "name the method, e.g. encoder.input: prompt"
