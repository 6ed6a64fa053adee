"""compile() is all or nothing, refuses a second compile, and its seed is reproducible and local.

A failed compile leaves the user's model exactly as it was: the same tensors (torch.equal), module
classes, requires_grad flags, module tree and outputs, and it can then be compiled normally.
Failures are provoked at every stage: a spec that does not fit the backbone (planning), an error in
the build of the last site (rewrite pass, after earlier layers were rewritten), in the projector's
build and at the end of the prefix install (prefix pass, after all layers were rewritten).
"""

import dataclasses

import pytest
import torch
from pipeline_models import TINY, batch, fresh_model

import vlsurgery.compiler.compile as compile_module
from vlsurgery.compiler.compile import compile
from vlsurgery.errors import CompileError, SpecError

GOOD = """
projector feat_dim=16
train encoder.layernorm, projector
encoder.{self_attn,ffn}: adapter r=8 heads=2 granularity=large
decoder.cross_attn.v: lite r=8
decoder.self_attn.{q,v}: lora r=2
"""

BAD_LAST_STATEMENT = {
    "layer out of range": "encoder[7].ffn: adapter r=8",
    "key invalid for the method": "decoder.ffn: lite r=8 heads=2",
    "heads do not divide r": "encoder.ffn: adapter r=6 heads=4",
    "method not allowed on a sublayer": "decoder.ffn: lora r=2",
}


def state(model):
    """Everything a failed compile must leave as it was."""
    return dict(
        tensors={k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()},
        classes=[(n, type(m)) for n, m in model.named_modules()],
        flags=[(n, p.requires_grad) for n, p in model.named_parameters()],
        ids=[(n, id(p)) for n, p in model.named_parameters()],
        attrs=[(n, sorted(m.__dict__)) for n, m in model.named_modules()],
    )


def assert_unchanged(model, before, inputs, logits_before):
    after = state(model)
    assert after["classes"] == before["classes"]
    assert after["flags"] == before["flags"]
    assert after["ids"] == before["ids"]
    assert after["attrs"] == before["attrs"]
    assert after["tensors"].keys() == before["tensors"].keys()
    for k, v in before["tensors"].items():
        assert torch.equal(after["tensors"][k], v), k
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, logits_before)


def prepared(backbone):
    model = fresh_model(backbone)
    ids, mask, labels = batch(model)
    inputs = dict(input_ids=ids, attention_mask=mask, labels=labels)
    with torch.no_grad():
        logits = model(**inputs).logits
    return model, inputs, logits, state(model)


@pytest.mark.parametrize("backbone", TINY)
@pytest.mark.parametrize("case", sorted(BAD_LAST_STATEMENT))
def test_invalid_last_statement_raises_and_leaves_model(backbone, case):
    model, inputs, logits, before = prepared(backbone)
    with pytest.raises(SpecError):
        compile(GOOD + BAD_LAST_STATEMENT[case], model)
    assert_unchanged(model, before, inputs, logits)
    compile(GOOD, model)  # and the model can still be compiled


class Injected(RuntimeError):
    pass


def _failing_get(fail_at: int, calls: list):
    real_get = compile_module.get

    def get(name):
        entry = real_get(name)

        def build(*args, **kwargs):
            calls.append(name)
            if len(calls) == fail_at:
                raise Injected(f"injected failure in build #{fail_at} ({name})")
            return entry.build(*args, **kwargs)

        return dataclasses.replace(entry, build=build)

    return get


def _count_builds(backbone) -> int:
    calls = []
    real = compile_module.get
    compile_module.get = _failing_get(-1, calls)
    try:
        compile(GOOD, fresh_model(backbone))
    finally:
        compile_module.get = real
    return len(calls)


@pytest.mark.parametrize("backbone", TINY)
def test_failure_in_last_site_build_leaves_model(backbone, monkeypatch):
    n = _count_builds(backbone)
    assert n == 2 * 2 + 2 + 2 * 2  # encoder 2 layers x 2 sublayers, decoder 2 x (v) + 2 x (q, v)
    model, inputs, logits, before = prepared(backbone)
    calls = []
    monkeypatch.setattr(compile_module, "get", _failing_get(n, calls))
    with pytest.raises((Injected, CompileError)) as info:
        compile(GOOD, model)
    assert "injected failure" in str(info.value) or isinstance(info.value.__cause__, Injected)
    assert len(calls) == n
    assert_unchanged(model, before, inputs, logits)
    monkeypatch.undo()
    compile(GOOD, model)


@pytest.mark.parametrize("where", ["build_projector", "install_prefix"])
@pytest.mark.parametrize("backbone", ["tiny-bart", "tiny-t5"])
def test_failure_in_prefix_pass_leaves_model(backbone, where, monkeypatch):
    """Late failures: every layer is already rewritten; with install_prefix the encoder and decoder
    have already changed class and the encoder holds ``vls_prefix``."""
    model, inputs, logits, before = prepared(backbone)
    real = getattr(compile_module, where)

    def failing(*args, **kwargs):
        real(*args, **kwargs)
        raise Injected(f"injected failure after {where}")

    monkeypatch.setattr(compile_module, where, failing)
    with pytest.raises((Injected, CompileError)):
        compile(GOOD, model)
    assert_unchanged(model, before, inputs, logits)
    assert not hasattr(model.get_encoder(), "vls_prefix")


@pytest.mark.parametrize("backbone", ["tiny-bart", "tiny-t5"])
def test_second_compile_is_refused(backbone):
    model = compile(GOOD, fresh_model(backbone))
    ids, mask, labels = batch(model)
    inputs = dict(input_ids=ids, attention_mask=mask, labels=labels)
    before = state(model)
    with torch.no_grad():
        logits = model(**inputs).logits
    for spec in (GOOD, "encoder.ffn: ia3"):
        with pytest.raises(CompileError, match="already been compiled"):
            compile(spec, model)
    assert_unchanged(model, before, inputs, logits)


def test_seed_is_reproducible_and_leaves_global_rng_alone():
    bases = [fresh_model("tiny-bart") for _ in range(3)]  # fresh_model seeds the global RNG itself
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    a = compile(GOOD, bases[0], seed=7)
    assert torch.equal(torch.get_rng_state(), rng)
    torch.manual_seed(999)  # a different global state must not matter
    rng = torch.get_rng_state()
    b = compile(GOOD, bases[1], seed=7)
    assert torch.equal(torch.get_rng_state(), rng)
    c = compile(GOOD, bases[2], seed=8)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys() == sc.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    pet = [k for k in sa if ".pet." in k or ".vls_prefix." in k]
    assert pet and any(not torch.equal(sa[k], sc[k]) for k in pet)  # the seed does matter
