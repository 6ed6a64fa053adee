"""Good specs: what they parse to, DSL == YAML, extends merging, lets."""

from __future__ import annotations

import pytest

from vlsurgery.spec import dumps, load, parse, resolve_lets, summarize
from vlsurgery.spec.addresses import covers, overlap
from vlsurgery.spec.ir import Address, Index, Param, Projector, Range, Ref, Segment, Spec, Statement


def seg(*names, layers=None):
    return Segment(None if names == ("*",) else names, layers)


def addr(*segments):
    return Address(tuple(s if isinstance(s, Segment) else seg(s) for s in segments))


DESIGN_CARD = "encoder.self_attn: granularity=vector heads=4; decoder.cross_attn.v: lite"

# (DSL text, the statements it says)
STATEMENTS = [
    (DESIGN_CARD, [Statement(addr("encoder", "self_attn"), None, (Param("granularity", "vector"), Param("heads", 4))),
                   Statement(addr("decoder", "cross_attn", "v"), "lite")]),
    ("encoder.{self_attn,ffn}: adapter", [Statement(addr("encoder", seg("ffn", "self_attn")), "adapter")]),
    ("encoder[0:6].self_attn.q: lora r=8 alpha=16",
     [Statement(addr(seg("encoder", layers=(Range(0, 6),)), "self_attn", "q"), "lora", (Param("alpha", 16), Param("r", 8)))]),
    ("decoder[-2:].ffn: compacter n=4", [Statement(addr(seg("decoder", layers=(Range(-2, None),)), "ffn"), "compacter",
                                                    (Param("n", 4),))]),
    ("encoder[:4].ffn: ia3", [Statement(addr(seg("encoder", layers=(Range(None, 4),)), "ffn"), "ia3")]),
    ("encoder[1,3,5].self_attn.{q,v}: ia3",
     [Statement(addr(seg("encoder", layers=(Index(1), Index(3), Index(5))), "self_attn", seg("q", "v")), "ia3")]),
    ("encoder[0:2, 5].ffn: lite", [Statement(addr(seg("encoder", layers=(Range(0, 2), Index(5))), "ffn"), "lite")]),
    ("encoder.input: prompt length=20", [Statement(addr("encoder", "input"), "prompt", (Param("length", 20),))]),
    ("*.ffn: adapter reduction=8", [Statement(addr(seg("*"), "ffn"), "adapter", (Param("reduction", 8),))]),
    ("encoder[-1].ffn: none", [Statement(addr(seg("encoder", layers=(Index(-1),)), "ffn"), "none")]),
    ("encoder: adapter", [Statement(addr("encoder"), "adapter")]),
    ("*.*.*: ia3", [Statement(addr(seg("*"), seg("*"), seg("*")), "ia3")]),
    ("{encoder,decoder}.ffn.in: lora", [Statement(addr(seg("decoder", "encoder"), "ffn", "in"), "lora")]),
    ("encoder.ffn:", [Statement(addr("encoder", "ffn"), None)]),
    ("encoder.ffn: adapter scale=0.3 init=zero granularity=middleX",
     [Statement(addr("encoder", "ffn"), "adapter", (Param("granularity", "middleX"), Param("init", "zero"),
                                                    Param("scale", 0.3)))]),
    ("encoder.ffn: compacter shared=false phm_rank=0", [Statement(addr("encoder", "ffn"), "compacter",
                                                                  (Param("phm_rank", 0), Param("shared", False)))]),
    ("encoder.ffn: lora", []),  # replaced below: lora on a sublayer is an error (see test_bad)
]
STATEMENTS.pop()


@pytest.mark.parametrize("text, expected", STATEMENTS, ids=[t for t, _ in STATEMENTS])
def test_statements(text, expected):
    spec = parse(text)
    assert list(spec.statements) == expected
    assert parse(dumps(spec)) == spec
    assert parse(dumps(spec, "yaml"), format="yaml") == spec


FULL = """\
# the paper's VL-PET-large on BART-base
backbone bart-base
let r = 96
projector feat_dim=2048 pos_dim=5 images=2
train encoder.layernorm, projector
train *.bias
encoder.{self_attn,ffn}: adapter r=$r heads=4 granularity=matrix gate_r=96
decoder.cross_attn.v: lite r=$r   # parallel value adapter
"""

FULL_YAML = """\
# the same design in YAML
backbone: bart-base
let: {r: 96}
projector: {feat_dim: 2048, pos_dim: 5, images: 2}
train: [encoder.layernorm, projector, "*.bias"]
sites:
  - at: "encoder.{self_attn,ffn}"
    method: adapter
    r: $r
    heads: 4
    granularity: matrix
    gate_r: 96
  - at: decoder.cross_attn.v
    method: lite
    r: $r
"""


def test_full_spec_ir():
    spec = parse(FULL, "full.vls")
    assert spec.backbone == "bart-base"
    assert spec.lets == (Param("r", 96),)
    assert spec.projector == Projector((Param("feat_dim", 2048), Param("pos_dim", 5), Param("images", 2)))
    assert set(spec.train) == {addr(seg("*"), "bias"), addr("encoder", "layernorm"), addr("projector")}
    assert spec.statements[0].params[-1] == Param("r", Ref("r"))


def test_yaml_and_dsl_equal():
    assert parse(FULL_YAML, "full.yaml") == parse(FULL, "full.vls")


def test_spans_point_at_the_source():
    spec = parse(FULL, "full.vls")
    stmt = spec.statements[1]
    assert (stmt.span.source, stmt.span.line, stmt.span.column) == ("full.vls", 8, 1)
    assert (stmt.params[0].span.line, stmt.params[0].span.column) == (8, 28)
    yspec = parse(FULL_YAML, "full.yaml")
    ystmt = yspec.statements[0]
    assert (ystmt.target.span.line, ystmt.target.span.column) == (7, 10)  # inside the quotes
    assert (ystmt.params[0].span.line, ystmt.params[0].span.column) == (12, 5)  # gate_r: sorted first


@pytest.mark.parametrize("text", [
    "backbone 'facebook/bart-base'", 'backbone "./my model"', "backbone ./models/t5-base",
    "let s = 0.3\nencoder.ffn: adapter scale=$s", "let name = 'hello world'", "let big = 1e-3", "let neg = -4",
    "\n\n;;  ; # only comments\n", "", "encoder.ffn: adapter # trailing\n", "encoder.ffn: adapter\r\nlet x = 1\r\n",
    "\ufeffencoder.ffn: adapter", "projector", "train all", "train encoder.self_attn.layernorm, decoder.ffn.out.bias",
    "encoder.ffn: adapter granularity=LARGE", "encoder . ffn : adapter r = 8",
])
def test_accepted(text):
    spec = parse(text)
    assert parse(dumps(spec)) == spec
    assert parse(dumps(spec, "yaml"), format="yaml") == spec


def test_values():
    spec = parse("let a = 1; let b = -2.5; let c = true; let d = false; let e = gelu_new; let f = \"x y\"; "
                 "let g = '\\n\\u00e9'; let h = 1e3; let i = \"true\"")
    values = {p.key: p.value for p in spec.lets}
    assert values == {"a": 1, "b": -2.5, "c": True, "d": False, "e": "gelu_new", "f": "x y", "g": "\né", "h": 1000.0,
                      "i": "true"}
    assert type(values["a"]) is int and type(values["h"]) is float


def test_quoted_ref_is_text_in_yaml():
    spec = parse('let: {x: "$r"}', format="yaml")
    assert spec.lets == (Param("x", "$r"),)
    assert '"$r"' in dumps(spec) and parse(dumps(spec)) == spec


def test_yaml_1e3_is_a_number():
    yaml_spec = parse("sites: [{at: encoder.ffn.in, method: lora, dropout: 1e-1}]", format="yaml")
    assert yaml_spec == parse("encoder.ffn.in: lora dropout=1e-1") == parse("encoder.ffn.in: lora dropout=0.1")


def test_format_guessing():
    assert parse("backbone: bart-base").backbone == "bart-base"
    assert parse("backbone bart-base").backbone == "bart-base"
    assert parse("# c\n---\nbackbone: t5-base").backbone == "t5-base"
    assert parse("encoder.ffn: adapter").statements[0].method == "adapter"


def test_printer_is_canonical():
    text = "encoder.{ffn , self_attn}:adapter   heads=4 r=8;backbone 'bart-base'\nlet z=1;let a=2"
    assert dumps(parse(text)) == ("backbone bart-base\n\nlet a = 2\nlet z = 1\n\n"
                                  "encoder.{ffn,self_attn}: adapter heads=4 r=8\n")


def test_overlap_verdicts():
    def a(text):
        return parse(f"{text}: none").statements[0].target
    assert overlap(a("encoder.ffn"), a("*.ffn")) == "yes"
    assert overlap(a("encoder.ffn"), a("decoder.ffn")) == "no"
    assert overlap(a("encoder.ffn"), a("encoder.ffn.in")) == "no"  # sublayer vs projection sites
    assert overlap(a("encoder[0:2].ffn"), a("encoder[2:4].ffn")) == "no"
    assert overlap(a("encoder[0:3].ffn"), a("encoder[2]")) == "yes"
    assert overlap(a("encoder[-2:].ffn"), a("encoder[-1].ffn")) == "yes"
    assert overlap(a("encoder[0:2].ffn"), a("encoder[-1].ffn")) == "maybe"
    assert overlap(a("encoder[1,3].ffn"), a("encoder[0,2].ffn")) == "no"
    assert overlap(a("*.self_attn.*"), a("decoder.cross_attn.v")) == "no"
    assert covers(a("*.ffn"), a("encoder[-1].ffn")) and not covers(a("encoder[-1].ffn"), a("*.ffn"))


def test_load_merges_extends(tmp_path):
    (tmp_path / "base.vls").write_text("backbone bart-base\nlet r = 96\nlet h = 4\ntrain projector\n"
                                       "encoder.ffn: adapter r=$r heads=$h\n")
    (tmp_path / "child.yaml").write_text("extends: base.vls\nlet: {r: 192}\ntrain: [encoder.layernorm]\n"
                                         "sites: [{at: decoder.cross_attn.v, method: lite}]\n")
    spec = load(tmp_path / "child.yaml")
    assert spec.extends is None and spec.backbone == "bart-base"
    assert spec.lets == (Param("h", 4), Param("r", 192))
    assert [s.method for s in spec.statements] == ["adapter", "lite"]
    assert set(spec.train) == {addr("encoder", "layernorm"), addr("projector")}
    resolved = resolve_lets(spec)
    assert resolved.statements[0].params == (Param("heads", 4), Param("r", 192))
    # parse() does not merge
    as_written = parse((tmp_path / "child.yaml").read_text(), format="yaml")
    assert as_written.extends == "base.vls" and len(as_written.statements) == 1


def test_extends_from_library_without_suffix(tmp_path, monkeypatch):
    lib = tmp_path / "lib"
    (lib / "paper").mkdir(parents=True)
    (lib / "paper" / "base.vls").write_text("backbone t5-base\n")
    monkeypatch.setattr("vlsurgery.spec.loader.spec_library", lambda: lib)
    (tmp_path / "x.vls").write_text('extends "paper/base"\nencoder.ffn: lite\n')
    assert load(tmp_path / "x.vls").backbone == "t5-base"


def test_child_lets_reach_base_refs(tmp_path):
    (tmp_path / "base.vls").write_text("encoder.ffn: adapter r=$r\n")  # $r bound by the child only
    (tmp_path / "c.vls").write_text('extends "base.vls"\nlet r = 8\n')
    assert resolve_lets(load(tmp_path / "c.vls")).statements[0].params == (Param("r", 8),)


def test_summary_format():
    spec = parse(FULL + "encoder[-1].ffn: granularity=middleY\ndecoder[0:2].cross_attn.v: none\n"
                 "decoder[-1].cross_attn.v: lite\n", "full.vls")
    assert summarize(spec) == """\
backbone   bart-base
lets       r = 96
projector
  set       feat_dim=2048 images=2 pos_dim=5
  defaults  init_feat=default init_img_order=default init_pos=default
train      encoder.layernorm, projector, *.bias
statements (5)
  #1  full.vls:7  encoder.{ffn,self_attn}: adapter
        set       gate_r=96 granularity=matrix heads=4 r=96 ($r)
        defaults  activation=gelu_new init_down=default init_gate=default init_gate_down=default init_up=default placement=sequential reduction=8 scale=1.0
  #2  full.vls:8  decoder.cross_attn.v: lite
        set       r=96 ($r)
        defaults  activation=gelu_new init_down=default init_up=default
  #3  full.vls:9  encoder[-1].ffn: (no method: merges into the current one; adapter where there is none)
        set       granularity=vector (middleY)
        overrides #1 full.vls:7 (merges into)
  #4  full.vls:10  decoder[0:2].cross_attn.v: none (removes what earlier statements placed on these sites)
        overrides #2 full.vls:8 (removes)
  #5  full.vls:11  decoder[-1].cross_attn.v: lite
        defaults  activation=gelu_new init_down=default init_up=default r=96
        overrides #2 full.vls:8 (merges into)
        may overlap #4 full.vls:10 (replaces; depends on the number of layers)"""


def test_spec_is_hashable_and_immutable():
    spec = parse(FULL)
    assert hash(spec) == hash(parse(FULL_YAML, format="yaml"))
    with pytest.raises(AttributeError):
        spec.backbone = "x"  # type: ignore[misc]


def test_empty_spec():
    assert parse("") == Spec() == parse("{}", format="yaml") == parse("# nothing", format="yaml")
