"""Resolution: addresses -> concrete sites, the override rule, and every problem at once."""

from __future__ import annotations

import pytest

import helpers  # noqa: F401  (quiet transformers)
from vlsurgery.errors import ResolutionError, SpecError
from vlsurgery.planning import plan
from vlsurgery.spec import parse


def ir(text):
    """The IR of a text without spec-level validation (which catches some of these problems first:
    resolution must catch them too, for Specs built directly)."""
    from vlsurgery.spec.loader import read

    spec, _, failed, _ = read(text)
    assert not failed
    return spec


def P(text, backbone="tiny-bart"):
    return plan(ir(text), backbone)


def paths(p):
    return [s.path for s in p.sites]


def errors(text, backbone="tiny-bart"):
    with pytest.raises(ResolutionError) as e:
        P(text, backbone)
    assert isinstance(e.value, SpecError)
    return e.value


def test_sublayer_sites_and_points_bart():
    p = P("encoder.{self_attn,ffn}: adapter r=8\ndecoder.cross_attn.v: lite r=4")
    assert paths(p) == ["encoder[0].self_attn", "encoder[0].ffn", "encoder[1].self_attn", "encoder[1].ffn",
                        "decoder[0].cross_attn.v", "decoder[1].cross_attn.v"]
    ffn = p.site("encoder[1].ffn")
    assert (ffn.kind, ffn.layer_module, ffn.x_point, ffn.h_point) == ("sublayer", "model.encoder.layers.1",
                                                                      "fc1:in", "fc2:out")
    v = p.site("decoder[0].cross_attn.v")
    assert (v.kind, v.linear, v.projection, v.sublayer) == ("projection", "encoder_attn.v_proj", "v", "cross_attn")
    assert v.module_path == "model.decoder.layers.0.encoder_attn.v_proj"


def test_t5_points_dims_and_gated_in():
    p = P("encoder.self_attn: adapter r=8\ndecoder[-1].self_attn.{q,o}: lora r=2\n*.ffn.in: ia3", "tiny-t5-gated")
    s = p.site("encoder[0].self_attn")
    assert (s.x_point, s.h_point, s.layer_module) == ("layer.0.layer_norm:in", "layer.0.SelfAttention:out",
                                                      "encoder.block.0")
    q, o = p.site("decoder[1].self_attn.q"), p.site("decoder[1].self_attn.o")
    assert (q.dims.d_in, q.dims.d_out, o.dims.d_in, o.dims.d_out) == (32, 32, 32, 32)
    assert p.site("decoder[0].ffn.in[wi_1]").linear == "layer.2.DenseReluDense.wi_1"
    assert p.site("encoder[0].ffn.in[wi_0]").dims.d_out == 48
    t5 = P("decoder.cross_attn.q: lora r=2", "tiny-t5")       # attention width 4 x 6 = 24 != d_model 32
    assert (t5.sites[0].dims.d_in, t5.sites[0].dims.d_out, t5.sites[0].linear) == (32, 24, "layer.1.EncDecAttention.q")
    assert t5.sites[0].trainable == 2 * (32 + 24)


def test_layer_selections_and_input():
    p = P("encoder[-1].ffn: adapter r=4\ndecoder[0:1, 1].self_attn.k: lora\nencoder.input: prompt length=3")
    assert paths(p) == ["encoder.input", "encoder[1].ffn", "decoder[0].self_attn.k", "decoder[1].self_attn.k"]
    inp = p.site("encoder.input")
    assert (inp.kind, inp.layer, inp.layer_module, inp.trainable) == ("input", None, None, 3 * 32)


def test_override_rule_site_by_site():
    p = P("""encoder: adapter r=8 heads=2
encoder[1].ffn: r=4
encoder[0].self_attn: lora_free_placeholder=1
""".replace("encoder[0].self_attn: lora_free_placeholder=1\n", "") + """encoder[0].self_attn: ia3
encoder[1].self_attn: none
decoder.ffn: granularity=vector
""")
    assert p.site("encoder[0].ffn").params.r == 8
    ffn1 = p.site("encoder[1].ffn").params
    assert (ffn1.r, ffn1.heads) == (4, 2)                       # merged field by field
    assert p.site("encoder[0].self_attn").method == "ia3"       # replaced
    assert "encoder[1].self_attn" not in paths(p)               # removed
    dec = p.site("decoder[0].ffn")                              # method-less on an empty site: adapter
    assert (dec.method, dec.params.granularity, dec.params.r) == ("adapter", "vector", 32 // 8)


def test_overridden_statements_warn():
    p = P("encoder.ffn: adapter r=8\nencoder.ffn: lite r=4\ndecoder.ffn: none")
    assert [w.severity for w in p.warnings] == ["warning", "warning"]
    assert p.warnings[0].span.line == 1 and "no effect" in p.warnings[0].message
    assert "removes nothing" in p.warnings[1].message
    kept = P("encoder.ffn: adapter r=8\nencoder[0].ffn: lite r=4")
    assert kept.warnings == ()


@pytest.mark.parametrize("text, needle", [
    ("encoder.cross_attn: adapter", "encoder has no cross_attn"),
    ("encoder.ffn.q: lora", "has no projection 'q'"),
    ("encoder[2].ffn: adapter", "layer 2 is out of range"),
    ("encoder[-3].ffn: adapter", "out of range"),
    ("decoder[0:5].ffn: adapter", "out of range"),
    ("encoder.self_attn: lora", "lora cannot be placed on a sublayer site"),
    ("encoder.input: lite", "cannot be placed on an input site"),
    ("decoder.input: prompt", "only be prepended to the encoder's input"),
    ("encoder.ffn: lora r=4\nencoder.ffn.in: lora\nencoder.ffn.in: heads=2", "parameter 'heads' is not valid for method 'lora'"),
    ("encoder.ffn: adapter heads=3 r=8", "heads=3 must divide r=8"),
    ("encoder.ffn: adapter reduction=64", "reduction=64 is larger"),
])
def test_resolution_errors(text, needle):
    e = errors(text)
    assert needle in e.render()
    assert all(p.span is not None and p.span.line >= 1 for p in e.errors)


def test_error_names_statement_backbone_and_nearest_roles():
    e = errors("backbone tiny-t5\nencoder.cross_attn.v: lite", "tiny-t5")
    (problem,) = e.errors
    assert "encoder.cross_attn.v" in problem.message and "tiny-t5" in problem.message
    assert problem.span.line == 2 and "decoder.cross_attn.v" in (problem.hint or "")


def test_all_problems_at_once_and_grouped_by_site():
    e = errors("encoder.self_attn: lora\nencoder[9].ffn: adapter\ndecoder.ffn: adapter heads=5 r=8\ntrain *.bias",
               "tiny-t5")
    messages = [p.message for p in e.errors]
    assert len(messages) == 4, messages
    assert any("decoder[0:2].ffn" in m for m in messages)        # one problem for both layers
    assert any("matches no parameter" in m and "no bias" in m for m in messages)


def test_train_targets():
    bart = P("projector\ntrain encoder.layernorm, projector")
    assert bart.train_projector
    assert "model.encoder.layernorm_embedding.bias" in bart.train
    assert all(n.startswith("model.encoder.") for n in bart.train) and len(bart.train) == 2 * 2 * 2 + 2
    t5 = P("train *.layernorm", "tiny-t5")
    assert "encoder.final_layer_norm.weight" in t5.train and "decoder.final_layer_norm.weight" in t5.train
    assert len(t5.train) == 2 * 2 + 1 + 2 * 3 + 1
    assert P("train encoder[0].self_attn.layernorm").train == (
        "model.encoder.layers.0.self_attn_layer_norm.weight", "model.encoder.layers.0.self_attn_layer_norm.bias")
    qb = P("train decoder.cross_attn.q.bias").train
    assert qb == ("model.decoder.layers.0.encoder_attn.q_proj.bias", "model.decoder.layers.1.encoder_attn.q_proj.bias")
    assert len(P("train *.bias").train) == sum(1 for n in P("").profile.parameters if n.endswith(".bias"))
    full = P("train all")
    assert set(full.train) == set(full.profile.parameters)
    e = errors("train projector")
    assert "no projector" in e.render()


def test_backbone_override_and_spec_backbone():
    spec = parse("backbone tiny-t5\nencoder.ffn: adapter r=4")
    assert plan(spec).profile.family == "t5"
    assert plan(spec, "tiny-bart").profile.family == "bart"
    from vlsurgery.errors import BackboneError

    with pytest.raises(BackboneError):
        plan(parse("encoder.ffn: adapter"))


def test_lets_are_bound_before_resolution():
    p = P("let r = 12\nencoder.ffn: adapter r=$r heads=3")
    assert p.site("encoder[0].ffn").params.r == 12


def test_a_new_granularity_drops_the_old_gates_details():
    """`granularity=none` after a matrix gate turns the gate off; it does not keep its gate_r."""
    p = P("encoder.ffn: adapter r=8 granularity=matrix gate_r=2 gate_init=zero\nencoder.ffn: granularity=none")
    site = p.sites[0]
    assert (site.params.granularity, site.params.gate_r, site.params.gate_init) == ("none", None, "default")
    kept = P("encoder.ffn: adapter r=8 granularity=matrix gate_r=2\nencoder.ffn: heads=2")
    assert kept.sites[0].params.gate_r == 2
