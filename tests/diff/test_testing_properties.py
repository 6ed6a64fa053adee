"""The central properties, driven by the public strategies of `vlsurgery.testing`.

The ``ci`` profile (tests/conftest.py) runs 40 examples per property; compile-based properties are
capped at 10 on tiny backbones.  ``pytest --hypothesis-profile=thorough`` runs many more.
"""

from __future__ import annotations

import dataclasses

import pytest
import transformers
from hypothesis import HealthCheck, find, given, settings, strategies as st

from vlsurgery.planning import plan
from vlsurgery.spec import dumps
from vlsurgery.testing import (assert_counts_match, assert_diff_laws, assert_dsl_yaml_agree, assert_roundtrip,
                               backbones, designs, specs)

transformers.logging.set_verbosity_error()
TINY = st.sampled_from(["tiny-bart", "tiny-t5", "tiny-t5-gated"])
#: Compiling is the slow part: 10 examples in the ci profile, a twentieth of the profile's count beyond.
COMPILE = settings(max_examples=max(10, settings.default.max_examples // 20), deadline=None,
                   suppress_health_check=[HealthCheck.too_slow])


@given(specs())
def test_roundtrip(spec):
    assert_roundtrip(spec)


@given(specs(backbone="tiny-t5-gated"))
def test_dsl_and_yaml_agree(spec):
    assert_dsl_yaml_agree(spec, "tiny-t5-gated")


@given(specs(), backbones())
def test_specs_without_a_backbone_resolve_on_every_drawn_backbone(spec, config):
    plan(spec, config)


@given(specs(backbone="tiny-bart"), specs(backbone="tiny-bart"))
def test_diff_laws(a, b):
    assert_diff_laws(a, b, "tiny-bart")


@given(specs(backbone="tiny-bart"), specs(backbone="tiny-t5-gated"))
def test_diff_laws_across_backbones(a, b):
    assert_diff_laws(a, b)


@given(designs())
def test_diff_laws_on_random_backbones(design):
    config, spec = design
    assert_diff_laws(spec, dataclasses.replace(spec, statements=spec.statements[:1], train=()), config)


@COMPILE
@given(designs())
def test_counts_match_compiled_model(design):
    config, spec = design
    assert_counts_match(spec, config)


@COMPILE
@given(specs(), TINY)
def test_counts_match_on_presets(spec, preset):
    assert_counts_match(spec, preset)


# --------------------------------------------------------------------------------------------
# the strategies themselves


@given(specs(methods=("lora",), roles=("self_attn", "q", "v"), max_statements=2, lets=False, projector=False,
             train=False))
def test_options_bound_the_specs(spec):
    assert 1 <= len(spec.statements) <= 2 and not spec.lets and spec.projector is None and not spec.train
    for s in spec.statements:
        assert s.method in ("lora", None)
        assert [seg.names for seg in s.target.segments[1:]] in ([("self_attn",), ("q",)], [("self_attn",), ("v",)],
                                                                [("self_attn",), ("q", "v")])


def test_failing_examples_shrink_to_small_readable_specs():
    # a property that fails whenever a compacter reads its input in parallel: the counterexample
    # hypothesis reports is that one fact, on one address, with everything else at its default
    found = find(specs(backbone="tiny-bart", methods=("compacter", "lite"), max_statements=2),
                 lambda s: any(p.key == "placement" and p.value == "parallel" for x in s.statements for p in x.params),
                 settings=settings(database=None, max_examples=200))
    assert not found.lets and found.projector is None and not found.train
    assert len(found.statements) <= 2 and all(len(x.params) <= 3 for x in found.statements), dumps(found)
    assert "encoder: compacter n=2 placement=parallel r=2" in dumps(found) or \
        "encoder.self_attn: compacter n=2 placement=parallel r=2" in dumps(found) or \
        "placement=parallel" in dumps(found).splitlines()[-1], dumps(found)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="unknown"):
        specs(methods=("adapterr",))
    with pytest.raises(ValueError, match="unknown"):
        backbones(families=("electra",))


def test_assertions_show_the_spec(monkeypatch):
    import vlsurgery.planning
    from vlsurgery.planning import count_plan
    from vlsurgery.spec import parse

    spec = parse("backbone tiny-bart\nencoder.ffn: ia3\n")
    off_by_one = lambda s, b: dataclasses.replace(count_plan(plan(s, b)), trainable=-1)  # noqa: E731
    monkeypatch.setattr(vlsurgery.planning, "count", off_by_one)
    with pytest.raises(AssertionError, match="(?s)predicted counts differ.*trainable: predicted -1.*"
                                             "spec:\n    backbone tiny-bart\n\n    encoder.ffn: ia3"):
        assert_counts_match(spec, "tiny-bart")
