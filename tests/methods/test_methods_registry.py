"""The registry: names, lookup errors, finalize (derived values and problems), build's context."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from vlsurgery.errors import UsageError, VLSurgeryError
from vlsurgery.methods import params as P
from vlsurgery.methods.registry import CONTEXT_KEYS, REGISTRY, MethodEntry, SiteDims, UnknownMethodError, get


def test_registry_matches_the_params_table():
    assert set(REGISTRY) == set(P.METHOD_PARAMS)
    for name, entry in REGISTRY.items():
        assert isinstance(entry, MethodEntry) and entry.name == name and get(name) is entry
        assert (entry.params, entry.sites) == P.METHOD_PARAMS[name]
    assert [f.name for f in dataclasses.fields(MethodEntry)] == [
        "name", "params", "sites", "finalize", "count", "shared", "build", "context", "needs_mask", "trains"]


def test_unknown_method_has_did_you_mean():
    with pytest.raises(UnknownMethodError) as info:
        get("adaptr")
    err = info.value
    assert isinstance(err, VLSurgeryError) and isinstance(err, LookupError)
    assert "did you mean 'adapter'?" in str(err) and "compacter" in str(err)
    assert err.name == "adaptr" and "lora" in err.choices
    with pytest.raises(UnknownMethodError):
        get("bitfit")  # a `train` declaration, not a method


@pytest.mark.parametrize("placement,dims,r", [
    ("sequential", SiteDims(768, 3072), 384),  # reads H: d_out
    ("parallel", SiteDims(768, 3072), 96),     # reads X: d_in
    ("sequential", SiteDims(64, 64), 8),
])
def test_finalize_derives_r_from_the_width_read(placement, dims, r):
    hp, problems = get("adapter").finalize(P.AdapterParams(placement=placement), dims)
    assert problems == [] and hp.r == r and hp.gate_r is None
    hp, _ = get("adapter").finalize(P.AdapterParams(placement=placement, granularity="matrix"), dims)
    assert hp.gate_r == r
    hp, _ = get("adapter").finalize(P.AdapterParams(r=16, granularity="matrix", gate_r=4), dims)
    assert (hp.r, hp.gate_r) == (16, 4)
    assert get("adapter").finalize(hp, dims) == (hp, [])


def test_finalize_fills_compacter_and_lora():
    hp, problems = get("compacter").finalize(P.CompacterParams(granularity="large"), SiteDims(64, 64))
    assert problems == [] and (hp.r, hp.gate_r, hp.granularity) == (8, 8, "matrix")
    hp, problems = get("lora").finalize(P.LoRAParams(r=4, granularity="matrix"), SiteDims(16, 32))
    assert problems == [] and hp.gate_r == 4


def keys(method, hp, dims):
    return [key for key, _ in get(method).finalize(hp, dims)[1]]


def test_finalize_problems():
    d = SiteDims(64, 64)
    assert keys("adapter", P.AdapterParams(heads=3), d) == ["heads"]  # r = 8 derived, 3 does not divide it
    assert keys("adapter", P.AdapterParams(reduction=100), d) == ["reduction"]
    assert keys("adapter", P.AdapterParams(granularity="token"), SiteDims(64, 128)) == ["granularity"]
    assert keys("adapter", P.AdapterParams(granularity="scalar"), SiteDims(64, 128)) == []  # concat works
    assert keys("lora", P.LoRAParams(granularity="middleX"), SiteDims(64, 128)) == ["granularity"]
    assert keys("adapter", P.AdapterParams(gate_r=4), d) == ["gate_r"]  # only for matrix
    assert keys("compacter", P.CompacterParams(n=3, r=6), d) == ["n"]
    assert keys("compacter", P.CompacterParams(n=4, r=6), SiteDims(64, 66)) == ["n", "n"]
    assert keys("compacter", P.CompacterParams(n=4, placement="parallel", r=8), SiteDims(66, 64)) == ["n"]
    assert keys("gate", P.GateOnlyParams(), d) == ["granularity"]
    assert keys("gate", P.GateOnlyParams(granularity="matrix"), d) == ["gate_r"]
    assert keys("adapter", P.AdapterParams(granularity="huge"), d) == ["granularity"]
    message = get("compacter").finalize(P.CompacterParams(n=4, r=8), SiteDims(64, 66))[1][0][1]
    assert "66" in message and "n=4" in message


def test_count_and_build_refuse_problems_and_wrong_classes():
    with pytest.raises(UsageError, match="heads=3 must divide r=8"):
        get("adapter").count(P.AdapterParams(heads=3), SiteDims(64, 64))
    with pytest.raises(UsageError, match="granularity=token"):
        get("adapter").build(P.AdapterParams(granularity="token"), SiteDims(8, 16))
    with pytest.raises(UsageError, match="takes LoRAParams"):
        get("lora").count(P.AdapterParams(), SiteDims(8, 8))
    with pytest.raises(UsageError, match="positive integer"):
        SiteDims(0, 8)


def test_defaults_and_aliases():
    assert get("adapter").count(None, SiteDims(16, 16)) == 16 * 2 * 2 + 2 + 16
    module = get("adapter").build(P.AdapterParams(r=4, granularity="middleY"), SiteDims(8, 8))
    assert module.gate.__class__.__name__ == "VectorGate"


def test_build_context():
    dims = SiteDims(8, 8)
    with pytest.raises(UsageError, match="unknown context"):
        get("adapter").build(P.AdapterParams(r=4), dims, shared=nn.ParameterDict())
    module = get("adapter").build(P.AdapterParams(r=4), dims, dtype=torch.bfloat16, shared_params=None)
    assert {p.dtype for p in module.parameters()} == {torch.bfloat16}
    store = nn.ParameterDict()
    get("compacter").build(P.CompacterParams(r=4, n=2), dims, shared_params=store)
    assert list(store) == ["compacter_phm_rule_n2"]
    get("compacter").build(P.CompacterParams(r=4, n=4), dims, shared_params=store)
    assert sorted(store) == ["compacter_phm_rule_n2", "compacter_phm_rule_n4"]
    assert get("compacter").shared(P.CompacterParams(r=4, n=2, shared=False), dims) == {}


# --------------------------------------------------------------------------------------------
# declared needs: what the compiler hands a method's modules


GATEABLE = {"adapter": P.AdapterParams, "compacter": P.CompacterParams, "lora": P.LoRAParams,
            "gate": P.GateOnlyParams}


@pytest.mark.parametrize("method", sorted(GATEABLE))
@pytest.mark.parametrize("granularity", P.GRANULARITIES + tuple(P.GRANULARITY_ALIASES))
def test_needs_mask_exactly_for_the_scalar_gate(method, granularity):
    """Only the scalar ("small") gate averages over tokens; every other gate ignores the mask."""
    hp = GATEABLE[method](granularity=granularity)
    scalar = P.GRANULARITY_ALIASES.get(granularity, granularity) == "scalar"
    assert get(method).needs_mask(hp) is scalar


def test_methods_without_a_gate_never_need_the_mask():
    for name in ("lite", "ia3", "prompt", "none"):
        assert get(name).needs_mask(None) is False
        assert get(name).needs_mask(P.METHOD_PARAMS[name][0]()) is False
    assert all(get(name).needs_mask(None) is False for name in GATEABLE)  # default granularity: none


def test_declared_context():
    assert get("prompt").context == ("token_embedding",)
    assert get("compacter").context == ("shared_params",)
    for name, entry in REGISTRY.items():
        assert set(entry.context) <= CONTEXT_KEYS - {"dtype", "device"}  # those go to every build
        if name not in ("prompt", "compacter"):
            assert entry.context == (), name


def test_every_method_trains_all_its_parameters():
    dims = SiteDims(8, 8)
    context = {"token_embedding": nn.Embedding(16, 8), "shared_params": nn.ParameterDict()}
    for name in ("adapter", "compacter", "lora", "ia3", "prompt"):
        entry = get(name)
        hp = P.CompacterParams(r=4, n=2) if name == "compacter" else None
        module = entry.build(hp, dims, **{key: context[key] for key in entry.context})
        names = [n for n, _ in module.named_parameters()]
        assert names and all(entry.trains(n) for n in names), name
