"""compile() hands each site module what its registry entry declares, and nothing by method name:
the padding mask where ``needs_mask`` says so, the context it declares, freezing by ``trains``,
and the projector frozen or trained by identity."""

from __future__ import annotations

import dataclasses

from pipeline_models import fresh_model

import vlsurgery.compiler.compile as compile_module
from vlsurgery.compiler import format_generated_code
from vlsurgery.compiler.compile import compile


def _patched_get(**changes):
    real = compile_module.get
    seen = []

    def get(name):
        entry = real(name)
        build = entry.build

        def recording_build(hp, dims, **context):
            seen.append((name, sorted(context)))
            return build(hp, dims, **context)

        return dataclasses.replace(entry, build=recording_build, **changes)

    return get, seen


def test_mask_goes_where_needs_mask_says(monkeypatch):
    spec = "encoder.ffn: adapter r=8 granularity=vector"
    assert "mask = padding_mask" not in format_generated_code(compile(spec, fresh_model("tiny-bart")))
    get, _ = _patched_get(needs_mask=lambda hp: True)
    monkeypatch.setattr(compile_module, "get", get)
    assert "mask = padding_mask" in format_generated_code(compile(spec, fresh_model("tiny-bart")))


def test_context_is_what_the_entry_declares(monkeypatch):
    get, seen = _patched_get()
    monkeypatch.setattr(compile_module, "get", get)
    compile("encoder.input: prompt length=2 init=vocab\nencoder.ffn: compacter r=8 n=2\n"
            "decoder.ffn: adapter r=8\n", fresh_model("tiny-bart"))
    context = dict(seen)
    assert context["prompt"] == ["device", "dtype", "token_embedding"]
    assert context["compacter"] == ["device", "dtype", "shared_params"]
    assert context["adapter"] == ["device", "dtype"]


def test_trains_decides_which_added_parameters_train(monkeypatch):
    get, _ = _patched_get(trains=lambda name: not name.endswith("bias"))
    monkeypatch.setattr(compile_module, "get", get)
    model = compile("encoder.ffn: adapter r=8", fresh_model("tiny-bart"))
    pet = {n: p.requires_grad for n, p in model.named_parameters() if ".pet." in n}
    assert pet and all(flag == (not n.endswith("bias")) for n, flag in pet.items())


def test_projector_trains_only_when_the_spec_says_so():
    for train, expected in (("", False), ("train projector\n", True)):
        model = compile(f"projector feat_dim=16\n{train}encoder.ffn: adapter r=8", fresh_model("tiny-bart"))
        projector = model.get_encoder().vls_prefix.projector
        assert {p.requires_grad for p in projector.parameters()} == {expected}
        assert model.get_input_embeddings().weight.requires_grad is False  # shared by reference, base
        assert all(p.requires_grad for n, p in model.named_parameters() if ".pet." in n)
