"""Per-part initialisation (``init_<part>=...``) and the small gate's pooling (``gate_pool``)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from transformers import BartConfig, T5Config

from vlsurgery.errors import SpecError, UsageError
from vlsurgery.methods import params as P
from vlsurgery.methods.finalize import fold_older_spellings
from vlsurgery.methods.gates import ScalarGate
from vlsurgery.methods.initializers import BackboneInit, backbone_init, init_tensor_
from vlsurgery.methods.registry import SiteDims, get

DIMS = SiteDims(64, 64)


def test_backbone_init_from_configs():
    assert backbone_init(BartConfig(init_std=0.03)) == BackboneInit(std=0.03)
    t5 = backbone_init(T5Config(initializer_factor=2.0))
    assert t5 == BackboneInit(factor=2.0) and t5.std_for(16) == 0.5 and t5.std_for(None) == 2.0
    assert backbone_init(object()) is None


def _sample(init, shape=(400, 100), backbone=None):
    t = torch.empty(shape)
    torch.manual_seed(0)
    init_tensor_(t, None, init, lambda: t.fill_(7.0), backbone=backbone)
    return t


def test_each_initialiser_draws_its_family():
    assert torch.equal(_sample("default"), torch.full((400, 100), 7.0))  # the part's own default
    assert torch.count_nonzero(_sample("zero")) == 0
    normal = _sample("normal(0.05)")
    assert abs(normal.std().item() - 0.05) < 0.002 and abs(normal.mean().item()) < 0.001
    uniform = _sample("uniform(0.1)")
    assert uniform.abs().max() <= 0.1 and abs(uniform.std().item() - 0.1 / math.sqrt(3)) < 0.002
    bart = _sample("backbone", backbone=BackboneInit(std=0.02))
    assert abs(bart.std().item() - 0.02) < 0.001
    t5 = _sample("backbone", backbone=BackboneInit(factor=1.0))  # fan-in rule: 1/sqrt(100)
    assert abs(t5.std().item() - 0.1) < 0.004


def test_backbone_without_context_is_a_teaching_error():
    with pytest.raises(UsageError, match="needs the backbone's initialiser.*backbone_init="):
        get("adapter").build(P.AdapterParams(r=8, init_up="backbone"), DIMS)
    module = get("adapter").build(P.AdapterParams(r=8, init_up="backbone"), DIMS,
                                  backbone_init=BackboneInit(std=0.5))
    assert torch.count_nonzero(module.delta.up.bias) == 0
    assert abs(module.delta.up.weight.std().item() - 0.5) < 0.1


def test_context_for_asks_for_the_backbone_only_when_used():
    assert get("adapter").context_for(P.AdapterParams()) == ()
    assert get("lite").context_for(P.LiteParams(init_down="backbone")) == ("backbone_init",)
    assert get("compacter").context_for(P.CompacterParams(granularity="small", init_gate="backbone")) == (
        "shared_params", "backbone_init")


@pytest.mark.parametrize("granularity, part", [("scalar", "proj"), ("token", "proj"), ("vector", "z"),
                                               ("matrix", "up")])
def test_init_gate_zero_starts_every_gate_at_its_neutral_value(granularity, part):
    module = get("gate").build(P.GateOnlyParams(granularity=granularity, gate_r=4, init_gate="zero")
                               if granularity == "matrix" else P.GateOnlyParams(granularity=granularity,
                                                                                init_gate="zero"), DIMS)
    assert all(torch.count_nonzero(p) == 0 for p in getattr(module.gate, part).parameters()) \
        if part != "z" else torch.count_nonzero(module.gate.z) == 0
    x, h = torch.randn(2, 5, 64), torch.randn(2, 5, 64)
    g = module.gate(x, h)
    assert torch.all(g == (1.0 if granularity == "vector" else 0.5))


def test_every_part_of_every_method_takes_its_initialiser():
    lora = get("lora").build(P.LoRAParams(r=4, init_A="normal(0.3)", init_B="uniform(0.01)"), DIMS)
    assert lora.delta.B.abs().max() <= 0.01 and torch.count_nonzero(lora.delta.B) > 0
    matrix = get("adapter").build(P.AdapterParams(r=8, heads=4, init_down="zero", init_up="normal(0.1)",
                                                  granularity="matrix", init_gate_down="uniform(0.2)"), DIMS)
    assert torch.count_nonzero(matrix.delta.down.weight) == 0
    assert matrix.gate.down.weight.abs().max() <= 0.2 and torch.count_nonzero(matrix.gate.down.bias) == 0
    compacter = get("compacter").build(P.CompacterParams(r=8, n=4, init_up="zero"), DIMS)
    assert torch.count_nonzero(compacter.delta.up.weight()) == 0
    assert torch.count_nonzero(compacter.delta.up.t) > 0  # only s is zero: t still learns


def test_projector_parts():
    from vlsurgery.methods.registry import build_projector

    params = P.ProjectorParams(feat_dim=256, init_feat="backbone", init_img_order="zero", init_pos="uniform(0.5)")
    proj = build_projector(params, 64, nn.Embedding(10, 64), backbone_init=BackboneInit(std=0.02))
    assert abs(proj.feat.weight.std().item() - 0.02) < 0.002 and torch.count_nonzero(proj.feat.bias) == 0
    assert torch.count_nonzero(proj.img_order.weight) == 0 and proj.pos.weight.abs().max() <= 0.5
    default = build_projector(P.ProjectorParams(feat_dim=256), 64, nn.Embedding(10, 64))
    assert abs(default.img_order.weight.std().item() - 1.0) < 0.3  # nn.Embedding's own N(0, 1)


# --------------------------------------------------------------------------------------------
# older spellings, problems


def test_older_spellings_fold_onto_the_parts():
    hp, problems = get("adapter").finalize(P.AdapterParams(init="zero", granularity="large", gate_init="zero"),
                                           DIMS)
    assert not problems and (hp.init, hp.init_up, hp.gate_init, hp.init_gate) == ("default", "zero", "default",
                                                                                    "zero")
    hp, _ = get("lora").finalize(P.LoRAParams(r=4, init="gaussian"), DIMS)
    assert (hp.init, hp.init_A) == ("default", "normal(0.25)")
    assert fold_older_spellings(hp) == hp  # idempotent


@pytest.mark.parametrize("hp, key, words", [
    (P.AdapterParams(init="zero", init_up="normal(0.1)"), "init", "older spelling of init_up"),
    (P.AdapterParams(init_down="zero", init_up="zero"), "init_down", "neither ever gets a gradient"),
    (P.LoRAParams(init_A="zero"), "init_A", "neither ever gets a gradient"),
    (P.AdapterParams(granularity="vector", gate_pool="all"), "gate_pool", "only applies to granularity=scalar"),
    (P.AdapterParams(granularity="token", init_gate_down="zero"), "init_gate_down", "matrix gate's Down"),
    (P.AdapterParams(init_gate="zero"), "init_gate", "builds no gate"),
    (P.CompacterParams(init_up="normal(0.1)"), "init_up", "takes default or zero"),
])
def test_problems_name_the_key_and_teach(hp, key, words):
    method = {P.AdapterParams: "adapter", P.LoRAParams: "lora", P.CompacterParams: "compacter"}[type(hp)]
    _, problems = get(method).finalize(hp, DIMS)
    assert any(k == key and words in message for k, message in problems), problems


def test_spec_errors_point_at_the_value():
    from vlsurgery.spec import dumps, parse

    with pytest.raises(SpecError) as err:
        parse("encoder.ffn: adapter r=8\nencoder.ffn: adapter init_up=gaussian\n", source="d.vls")
    text = err.value.render()
    assert "d.vls:2:22" in text and "default, zero, backbone, normal(std) or uniform(a)" in text
    with pytest.raises(SpecError, match="must be a positive number"):
        parse("encoder.ffn: adapter init_up=normal(0)")
    spec = parse("encoder.ffn: adapter init_up=normal(2e-2) granularity=small gate_pool=all")
    assert "init_up=normal(0.02)" in dumps(spec) and parse(dumps(spec)) == spec


def test_an_init_change_is_a_diff_change(tmp_path):
    from vlsurgery.diff import diff

    a, b = tmp_path / "a.vls", tmp_path / "b.vls"
    a.write_text("backbone tiny-bart\nencoder.ffn: adapter r=8 granularity=small\n")
    b.write_text("backbone tiny-bart\nencoder.ffn: adapter r=8 granularity=small gate_pool=all init_up=zero\n")
    d = diff(a, b)
    assert not d.identical
    text = d.render()
    assert "init_up: default -> zero" in text and "gate: scalar -> scalar(pool=all)" in text


# --------------------------------------------------------------------------------------------
# the small gate's pooling


def test_scalar_gate_pools():
    torch.manual_seed(0)
    x, h = torch.randn(2, 6, 8), torch.randn(2, 6, 8)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], dtype=torch.bool)
    tokens, every = ScalarGate(8, 8), ScalarGate(8, 8, pool="all")
    every.load_state_dict(tokens.state_dict())
    g = torch.sigmoid(tokens.proj(torch.cat([x, h], -1)))[..., 0]  # (2, 6)
    assert torch.allclose(every(x, h, mask).flatten(), g.mean(1))  # the mask is ignored
    assert torch.allclose(tokens(x, h, mask).flatten(), torch.stack([g[0].mean(), g[1, :4].mean()]))
    with pytest.raises(UsageError, match="gate_pool must be one of tokens, all"):
        ScalarGate(8, 8, pool="real")


def test_only_token_pooling_needs_the_mask():
    assert get("adapter").needs_mask(P.AdapterParams(granularity="small")) is True
    assert get("adapter").needs_mask(P.AdapterParams(granularity="small", gate_pool="all")) is False
