"""Properties: the reader never fails with anything but SpecError; print/parse and YAML/DSL round trips."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

from spec_strategies import specs
from vlsurgery.errors import SpecError, SpecSyntaxError
from vlsurgery.spec import dumps, parse, validate
from vlsurgery.spec.dsl import quote
from vlsurgery.spec.grammar import KEYWORDS, parser

NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True).filter(lambda s: s not in KEYWORDS + ("true", "false"))

# Tokens padded with a space so that two of them never glue into one (`let` `r` -> `letr`);
# comments end with their line, so they are generated only as whole lines.
padded = {
    "NAME": NAME.map(" {} ".format),
    "INT": st.integers(-50, 50).map(" {} ".format),
    "FLOAT": st.floats(-1e18, 1e18, allow_nan=False).map(" {!r} ".format),  # the language's range (docs/limits.md)
    "PATH": st.sampled_from(["bart-base", "facebook/bart-base", "./x.vls"]).map(" {} ".format),
    "REF": NAME.map(" ${} ".format),
    "STRING": st.text(max_size=8).map(quote).map(" {} ".format),
    "COMMENT": st.just(" "),
    "_SEP": st.sampled_from(["\n", ";", "  # note\n"]),
}
for keyword in KEYWORDS:
    padded[keyword.upper()] = st.just(f" {keyword} ")


def _never_crashes(text, fmt=None):
    try:
        parse(text, "gen.vls", format=fmt)
    except SpecError as e:
        assert e.render()


@given(from_lark(parser(), start="start", explicit=padded))
def test_grammar_strings_parse(text):
    """Every string the grammar generates (tokens separated) passes the syntax check."""
    try:
        parse(text, "gen.vls", format="dsl")
    except SpecSyntaxError as e:  # pragma: no cover - the property
        raise AssertionError(f"grammar string rejected:\n{text!r}\n{e}")
    except SpecError:
        pass  # valid syntax, invalid design (unknown method...): fine here


@given(from_lark(parser(), start="start"))
def test_raw_grammar_strings_never_crash(text):
    _never_crashes(text, "dsl")


@given(from_lark(parser(), start="start"), st.data())
def test_mutated_strings_never_crash(text, data):
    chars = list(text)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(chars)))
        op = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        ch = data.draw(st.sampled_from(list("{}[]:;=.,*$#\"'\n\t -0a\x00\\é")))
        if op == "insert" or not chars:
            chars.insert(pos, ch)
        elif op == "delete":
            del chars[min(pos, len(chars) - 1)]
        else:
            chars[min(pos, len(chars) - 1)] = ch
    _never_crashes("".join(chars))


@given(st.text(max_size=60))
@example("a: [1\n")
@example("!!python/object:os.system {}")
@example("backbone: &a [*a]\n")
def test_garbage_never_crashes(text):
    _never_crashes(text)
    _never_crashes(text, "yaml")
    _never_crashes(text, "dsl")


@given(st.binary(max_size=40))
def test_bytes_never_crash(data):
    _never_crashes(data)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(specs(with_extends=True))
def test_print_parse_round_trip(spec):
    assume(not [p for p in validate(spec) if p.severity == "error"])
    text = dumps(spec)
    assert parse(text, format="dsl") == spec, text
    assert dumps(parse(text, format="dsl")) == text  # canonical text is a fixed point


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(specs(with_extends=True))
def test_yaml_equals_dsl(spec):
    assume(not [p for p in validate(spec) if p.severity == "error"])
    yaml_text = dumps(spec, "yaml")
    assert parse(yaml_text, format="yaml") == spec, yaml_text
    assert parse(dumps(spec, "dsl"), format="dsl") == parse(yaml_text, format="yaml")


@pytest.mark.parametrize("value", [0.3, 1e-05, 1e16, -2.5e-300, 5e-324, 1.0, 123456789.123])
def test_floats_survive_both_forms(value):
    text = f"*.ffn: adapter scale={value!r}"
    spec = parse(text)
    assert parse(dumps(spec, "yaml"), format="yaml") == spec
    assert spec.statements[0].params[0].value == value
