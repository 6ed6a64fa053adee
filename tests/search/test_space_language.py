"""Design spaces in the language: reading, canonical printing, YAML, checks, bounds."""

from __future__ import annotations

import pytest

from vlsurgery.errors import SpecError
from vlsurgery.spec import dumps, load_space, parse, parse_space
from vlsurgery.spec.space import MAX_OPTIONS

SPACE = """backbone bart-base
let r = (48|96|192)
encoder[0:12 | 6:12].{self_attn,ffn}: adapter r=$r heads=4 granularity=(none|small|middlex|middley|large)
decoder.cross_attn.v: (lite r=96 | none)
"""


def test_axes_members_and_canonical_text():
    space = parse_space(SPACE)
    assert [a.label for a in space.axes] == ["$r", "#1 at", "#1 granularity", "#2 method"]
    assert len(space) == 3 * 2 * 5 * 2
    text = dumps(space.spec)
    assert "encoder[0:12 | 6:12].{ffn,self_attn}: adapter granularity=(none|small|middlex|middley|large)" in text
    assert "decoder.cross_attn.v: (lite r=96 | none)" in text
    assert parse_space(text).spec == space.spec            # fmt is a fixed point
    assert parse_space(dumps(space.spec, "yaml"), format="yaml").spec == space.spec


def test_every_member_is_an_ordinary_spec():
    space = parse_space(SPACE)
    member = space.member((2, 1, 4, 1))
    text = dumps(member)
    assert parse(text) == member                             # it prints, parses and validates as a spec
    assert "let r = 192" in text and "encoder[6:12]" in text and "granularity=large" in text
    assert "decoder.cross_attn.v: none" in text


def test_alternation_still_means_all_of_these():
    """{a,b} is one address naming both sublayers; (a|b) is a choice between them."""
    all_of = parse("encoder.{self_attn,ffn}: adapter")
    assert len(all_of.statements) == 1
    one_of = parse_space("encoder.(self_attn|ffn): adapter")
    assert len(one_of) == 2
    assert [dumps(m).strip() for m in one_of] == ["encoder.self_attn: adapter", "encoder.ffn: adapter"]


def test_a_plain_spec_is_a_space_of_one():
    space = parse_space("encoder.ffn: adapter r=8")
    assert len(space) == 1 and list(space) == [parse("encoder.ffn: adapter r=8")]


def test_a_million_members_are_enumerated_lazily():
    values = "|".join(str(8 * (i + 1)) for i in range(100))
    space = parse_space(f"encoder.ffn: adapter r=({values}) reduction=(1|2|4|8|16|32|64|128|256|512)\n"
                        f"decoder.ffn: adapter r=({values})")
    assert len(space) == 100 * 10 * 100 * 10 // 10
    first = next(iter(space))
    assert "r=8" in dumps(first)


def test_a_space_is_not_a_spec():
    with pytest.raises(SpecError) as e:
        parse("encoder.ffn: adapter r=(8|16)")
    assert "design space (1 choice, 2 members)" in str(e.value)
    assert "<string>:1:24" in str(e.value) or ":1:24" in str(e.value)


def test_errors_name_the_option_and_position():
    with pytest.raises(SpecError) as e:
        parse_space("encoder.ffn: adapter r=(8|12) heads=(2|5)")
    text = str(e.value)
    assert "heads=5 must divide r=8" in text and "with #1 heads = 5" in text
    with pytest.raises(SpecError) as e:
        parse_space("encoder.ffn: (adapter | none) reduction=8")
    assert "unknown parameter 'reduction' for method 'none'" in str(e.value)
    assert "with #1 method = none" in str(e.value)


@pytest.mark.parametrize("text, words", [
    ("encoder.ffn: adapter r=(8|8)", "listed twice"),
    ("encoder.ffn: (adapter r=(8|16) | none)", "a choice inside a method choice"),
    ("encoder.ffn: (adapter r=8 | lite) r=16", "set both inside the method choice and after it"),
    ("train (encoder|decoder).layernorm\nencoder.ffn: adapter", "a train target cannot be a choice"),
    ("encoder.ffn: adapter r=(" + "|".join(str(i) for i in range(1, MAX_OPTIONS + 2)) + ")", "options"),
    ("\n".join(f"encoder[{i}].ffn: adapter r=(8|16)" for i in range(12)) + "\n" +
     "\n".join(f"decoder[{i}].ffn: adapter r=(8|16|32|64|96|128)" for i in range(12)), "members"),
])
def test_hostile_spaces_are_clear_errors(text, words):
    with pytest.raises(SpecError) as e:
        parse_space(text)
    assert words in str(e.value)


def test_an_address_with_too_many_combinations_is_refused_before_they_are_built():
    import time

    start = time.perf_counter()
    with pytest.raises(SpecError) as e:
        parse_space("backbone tiny-bart\nencoder" + ".(a|b)" * 40 + ": adapter")  # 2**40 addresses
    assert time.perf_counter() - start < 2
    assert "an address with 1,099,511,627,776 combinations" in str(e.value) and ":2:1" in str(e.value)
    with pytest.raises(SpecError, match="combinations"):
        parse_space("encoder[" + " | ".join(map(str, range(200))) + "].(" + "|".join(f"n{i}" for i in range(200)) + ")"
                    ": adapter")


def test_an_empty_method_option_is_an_error_suggesting_none():
    for text in ("decoder.cross_attn.v: ( | lite r=4)", "decoder.cross_attn.v: (lite r=4 |)"):
        with pytest.raises(SpecError) as e:
            parse_space("backbone tiny-bart\n" + text)
        assert "an empty option in a method choice" in str(e.value) and "(none | lite r=4)" in str(e.value)
        assert ":2:23" in str(e.value)
    with pytest.raises(SpecError, match="an empty option in a method choice"):
        parse_space("backbone: tiny-bart\nsites:\n  - at: decoder.cross_attn.v\n    method: [{}, lite]\n",
                    format="yaml")
    assert len(parse_space("backbone tiny-bart\ndecoder.cross_attn.v: (r=4 | r=8)")) == 2  # parameters only: fine
    with pytest.raises(SpecError) as e:  # a bad number in an option is that error alone, not an empty option
        parse_space("decoder.cross_attn.v: (r=99999999999999999999999 | lite)")
    assert "out of range" in str(e.value) and "empty" not in str(e.value)


def test_options_of_different_types_are_different_options():
    with pytest.raises(SpecError) as e:  # true is no number of heads, but it is not 1 either
        parse_space("backbone tiny-bart\nencoder.ffn: adapter r=8 heads=(true|1)")
    assert "listed twice" not in str(e.value) and "heads must be an integer >= 1, found True" in str(e.value)
    with pytest.raises(SpecError, match="listed twice"):
        parse_space("encoder.ffn: adapter heads=(true|true)")


def test_syntax_error_in_a_choice_is_positioned():
    with pytest.raises(SpecError) as e:
        parse_space("encoder.ffn: adapter r=(8|)")
    assert ":1:27" in str(e.value)


def test_load_space_with_extends(tmp_path):
    (tmp_path / "base.vls").write_text("backbone tiny-bart\nencoder.ffn: adapter r=8\n")
    (tmp_path / "space.vls").write_text('extends "base.vls"\nencoder.ffn: granularity=(none|large)\n')
    space = load_space(tmp_path / "space.vls")
    assert len(space) == 2 and space.spec.backbone == "tiny-bart"


def test_check_and_fmt_understand_spaces(tmp_path, capsys):
    from vlsurgery.cli.main import main

    path = tmp_path / "space.vls"
    path.write_text("backbone tiny-bart\nencoder[0 | -1].ffn: adapter   r=(8|16)\n")
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "a design space: 2 choices, 4 members" in out
    assert "#1 at  one of encoder[0].ffn | encoder[-1].ffn" in out and "#1 r   one of 8 | 16" in out
    assert main(["fmt", str(path)]) == 0
    assert capsys.readouterr().out == "backbone tiny-bart\n\nencoder[0 | -1].ffn: adapter r=(8|16)\n"
    assert main(["fmt", str(path), "--to", "yaml"]) == 0
    yaml_text = capsys.readouterr().out
    assert "r: [8, 16]" in yaml_text and 'at: "encoder[0 | -1].ffn"' in yaml_text
    (tmp_path / "space.yaml").write_text(yaml_text)
    assert main(["check", "-q", str(tmp_path / "space.yaml")]) == 0


def test_check_reports_the_member_that_does_not_fit_the_backbone(tmp_path, capsys):
    from vlsurgery.cli.main import main

    path = tmp_path / "space.vls"
    path.write_text("backbone tiny-bart\nencoder[0 | 7].ffn: adapter r=(8|16)\n")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "layer 7 is out of range" in err and "in the member with #1 at = encoder[7].ffn" in err
