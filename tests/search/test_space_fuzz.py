"""Hostile spaces: texts generated from the grammar (choices included) either fail with a
positioned vlsurgery error or give a space whose members print, parse back and count (or fail to
plan with a vlsurgery error) -- never a traceback from inside a library."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

from vlsurgery.errors import SpecError, VLSurgeryError
from vlsurgery.planning import count
from vlsurgery.search.counter import Counter
from vlsurgery.spec import dumps, parse, parse_space
from vlsurgery.spec.grammar import parser

NAMES = st.sampled_from(["encoder", "decoder", "ffn", "self_attn", "cross_attn", "q", "v", "in", "input",
                         "adapter", "lite", "lora", "none", "prompt", "r", "heads", "granularity", "vector",
                         "matrix", "length", "compacter", "n", "reduction", "x"])
TEXTS = from_lark(parser(), start="start", explicit={
    "NAME": NAMES, "PATH": st.just("tiny-bart"), "INT": st.integers(-3, 40).map(str),
    "FLOAT": st.sampled_from(["0.5", "1e-3"]), "STRING": st.just('"x"'), "REF": st.sampled_from(["$r", "$nope"]),
})


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(TEXTS)
def test_generated_spaces(text):
    try:
        space = parse_space(text)
    except SpecError as e:
        assert all(p.span is not None and p.span.line >= 1 for p in e.errors if "statements" not in p.message), e
        return
    assert len(space) >= 1
    counter = None
    for idx in space.samples()[:8]:
        member = space.member(idx)
        assert parse(dumps(member)) == member
        counter = counter or Counter(space, "tiny-bart")
        got = counter(idx)
        try:
            expected = count(member, "tiny-bart")
        except VLSurgeryError:
            assert got.error is not None   # search skips exactly the members that do not plan
            continue
        assert got.error is None and (got.trainable, got.total) == (expected.trainable, expected.total)
