"""Every case of the table through the shared invariants: identity, dtypes, gradients, seeds."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from methods_cases import CASES, IDS, build, inputs, randomise_
from vlsurgery.errors import UsageError
from vlsurgery.methods import params as P
from vlsurgery.methods.registry import SiteDims

DTYPES = [torch.float32, torch.bfloat16, torch.float16]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("method,hp,dims", [c[1:] for c in CASES], ids=IDS)
def test_make_identity_is_exact(method, hp, dims, dtype):
    module = randomise_(build(method, hp, dims)).make_identity_().to(dtype)
    x, h, mask = inputs(dims, dtype)
    assert torch.equal(module(x, h), h)
    assert torch.equal(module(x, h, mask), h)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("method,hp,dims", [c[1:] for c in CASES], ids=IDS)
def test_runs_in_dtype(method, hp, dims, dtype):
    module = build(method, hp, dims, dtype=dtype)
    x, h, mask = inputs(dims, dtype)
    out = module(x, h, mask)
    assert out.dtype == dtype and out.shape == h.shape
    assert torch.isfinite(out).all()
    ref = build(method, hp, dims)
    ref.load_state_dict({k: v.float() for k, v in module.state_dict().items()})
    tol = 1e-5 if dtype == torch.float32 else 6e-2
    torch.testing.assert_close(out.float(), ref(x.float(), h.float(), mask), atol=tol, rtol=tol)


@pytest.mark.parametrize("method,hp,dims", [c[1:] for c in CASES], ids=IDS)
def test_gradients_reach_module_parameters_only(method, hp, dims):
    module = randomise_(build(method, hp, dims))  # random: zero-initialised Ups would block gradients
    base = nn.Linear(dims.d_in, dims.d_out).requires_grad_(False)  # the frozen projection the site wraps
    x, _, mask = inputs(dims)
    x.requires_grad_(True)
    module(x, base(x), mask).square().sum().backward()
    assert base.weight.grad is None and base.bias.grad is None
    assert x.grad is not None  # gradients still flow back through the site into the network below
    for name, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("method,hp,dims", [c[1:] for c in CASES], ids=IDS)
def test_seed_reproducible(method, hp, dims):
    torch.manual_seed(123)
    a = build(method, hp, dims).state_dict()
    torch.manual_seed(123)
    b = build(method, hp, dims).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    torch.manual_seed(124)
    c = build(method, hp, dims).state_dict()
    random = [k for k in a if a[k].numel() and not torch.equal(a[k], c[k])]
    assert bool(random) == (method not in ("ia3", "none"))


@pytest.mark.parametrize("method,hp,dims", [c[1:] for c in CASES], ids=IDS)
def test_state_dict_round_trip(method, hp, dims):
    a, b = randomise_(build(method, hp, dims)), build(method, hp, dims)
    b.load_state_dict(a.state_dict(), strict=True)
    x, h, mask = inputs(dims)
    assert torch.equal(a(x, h, mask), b(x, h, mask))


@pytest.mark.parametrize("method,hp", [
    ("adapter", P.AdapterParams(r=4, scale=0.3)),
    ("compacter", P.CompacterParams(r=4, n=2, scale=2.0)),
    ("gate", P.GateOnlyParams(granularity="vector", scale=0.5)),
])
def test_make_identity_refuses_a_scale(method, hp):
    with pytest.raises(UsageError, match="scale"):
        build(method, hp, SiteDims(8, 8)).make_identity_()


def test_default_inits_that_start_at_identity():
    dims = SiteDims(16, 16)
    x, h, _ = inputs(dims)
    for method, hp in [("adapter", P.AdapterParams(r=4, init="zero")), ("lora", P.LoRAParams(r=4)),
                       ("lora", P.LoRAParams(r=4, init="gaussian")), ("ia3", P.IA3Params()),
                       ("compacter", P.CompacterParams(r=4, n=2, init="zero")),
                       ("lite", P.LiteParams(r=4, init="zero"))]:
        assert torch.equal(build(method, hp, dims)(x, h), h), method
