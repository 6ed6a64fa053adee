"""Hostile and mistaken input at compile time: sizes no machine can hold, a second compile of a
design without sites, visual inputs a design cannot use, and the design mark on every model."""

import re
import time

import pytest
import torch
from pipeline_models import batch, fresh_model

import vlsurgery.compiler.budget as budget
import vlsurgery.compiler.compile as compile_module
from vlsurgery.compiler.compile import compile
from vlsurgery.compiler.design import Design, design_of
from vlsurgery.compiler.transaction import Snapshot
from vlsurgery.errors import CompileError, UsageError
from vlsurgery.planning import count
from vlsurgery.spec import dumps, parse

HUGE = {
    "adapter r=10**12": ("encoder.ffn: adapter r=1000000000000", "encoder[0].ffn (adapter)"),
    "adapter r=10**18": ("encoder.ffn: adapter r=1000000000000000000", "encoder[0].ffn (adapter)"),
    "prompt length": ("encoder.input: prompt length=1000000000000", "encoder.input (prompt)"),
    "projector feat_dim": ("projector feat_dim=1000000000000", "projector"),
}


def unchanged(model, snapshot):
    assert snapshot.changed() == [] and design_of(model) is None


@pytest.mark.parametrize("case", sorted(HUGE))
@pytest.mark.parametrize("backbone", ["tiny-bart", "tiny-t5"])
def test_sizes_beyond_memory_are_refused_before_allocating(backbone, case):
    spec, largest = HUGE[case]
    model = fresh_model(backbone)
    snapshot = Snapshot(model)
    started = time.perf_counter()
    with pytest.raises(CompileError) as info:
        compile(spec, model)
    message = str(info.value)
    assert "is free there" in message and "nothing was allocated" in message
    assert re.search(rf"Largest: {re.escape(largest)}: [\d.]+ (TiB|EiB) in float32", message), message
    assert time.perf_counter() - started < 5
    unchanged(model, snapshot)


def test_the_estimate_is_the_plans_count_in_the_models_dtype():
    from vlsurgery.planning import plan

    spec = "encoder.ffn: adapter r=8\nprojector"
    model = fresh_model("tiny-bart").to(torch.bfloat16)
    parts = budget.design_bytes(plan(spec, model), model)
    c = count(spec, model)
    in_model = sum(n for what, n, _, _ in parts if what != "projector")  # the projector is built in fp32 first
    assert in_model == (c.added + c.projector) * 2
    assert [p[1] for p in parts] == sorted((p[1] for p in parts), reverse=True)


def test_refusal_names_the_largest_sites_and_what_is_free(monkeypatch):
    monkeypatch.setattr(budget, "available_bytes", lambda device: 1000)
    model = fresh_model("tiny-bart")
    snapshot = Snapshot(model)
    with pytest.raises(CompileError, match=r"only 1000 B is free there.*Largest: encoder\[\d\]\.ffn \(adapter\)"):
        compile("encoder.ffn: adapter r=64\ndecoder.self_attn.q: lora r=1", model)
    unchanged(model, snapshot)


def test_host_memory_is_read():
    free = budget.available_bytes(torch.device("cpu"))
    assert free is None or 0 < free < 2 ** 60
    assert budget.available_bytes(torch.device("meta")) is None


def test_cuda_memory_is_what_the_driver_reports_free(monkeypatch):
    asked = []
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: asked.append(device) or (123, 456))
    assert budget.available_bytes(torch.device("cuda", 1)) == 123 and asked == [torch.device("cuda", 1)]


def test_allocation_failures_that_pass_the_estimate_become_compile_errors(monkeypatch):
    """When the free memory cannot be told, the allocator's own failure is caught in the transaction."""
    monkeypatch.setattr(budget, "available_bytes", lambda device: None)
    model = fresh_model("tiny-t5")
    snapshot = Snapshot(model)
    spec = "encoder.self_attn: ia3\nencoder.ffn: adapter r=1000000000000000000"  # numel beyond int64
    numel = count(spec, model).plan.site("encoder[0].ffn").trainable
    with pytest.raises(CompileError) as info:
        compile(spec, model)
    assert str(info.value).startswith(f"cannot allocate the module of site encoder[0].ffn (adapter) ({numel:,} "
                                      "parameters): RuntimeError: ")
    unchanged(model, snapshot)


def test_allocator_errors_of_the_projector_are_guarded_and_other_errors_kept(monkeypatch):
    model = fresh_model("tiny-bart")
    snapshot = Snapshot(model)

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(compile_module, "build_projector", out_of_memory)
    with pytest.raises(CompileError, match="cannot allocate the visual projector: OutOfMemoryError"):
        compile("encoder.ffn: adapter r=4\nprojector", model)
    unchanged(model, snapshot)

    def bug(*args, **kwargs):
        raise RuntimeError("some unrelated failure")

    monkeypatch.setattr(compile_module, "build_projector", bug)
    with pytest.raises(RuntimeError, match="some unrelated failure") as info:
        compile("projector", model)
    assert not isinstance(info.value, CompileError)
    unchanged(model, snapshot)


@pytest.mark.parametrize("spec", ["train encoder.layernorm", "projector", "encoder.ffn: ia3"])
def test_every_compile_marks_the_model_and_a_second_is_refused(spec):
    model = compile(spec, fresh_model("tiny-t5"))
    design = design_of(model)
    assert design == Design.of_text(dumps(parse(spec)))
    assert parse(design.text) == parse(spec)
    assert all(".vls_design" not in name for name in model.state_dict())
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    for again in (spec, "train decoder.layernorm"):
        with pytest.raises(CompileError, match="already been compiled.*Compile a fresh model"):
            compile(again, model)
    assert flags == {n: p.requires_grad for n, p in model.named_parameters()}


def test_designs_compare_by_hash():
    a = design_of(compile("encoder.ffn: ia3\ntrain encoder.layernorm", fresh_model("tiny-bart")))
    b = design_of(compile("train encoder.layernorm; encoder.ffn: ia3", fresh_model("tiny-t5")))
    c = design_of(compile("encoder.ffn: ia3", fresh_model("tiny-bart")))
    assert a.sha256 == b.sha256 != c.sha256 and len(a.sha256) == 64


VISUAL = {"vis_feats": lambda: torch.zeros(2, 3, 2048), "vis_boxes": lambda: torch.zeros(2, 3, 4),
          "vis_image_ids": lambda: torch.zeros(2, 3, dtype=torch.long)}


@pytest.mark.parametrize("spec", ["encoder.ffn: adapter r=4", "train encoder.layernorm",
                                  "encoder.input: prompt length=2"])
@pytest.mark.parametrize("backbone", ["tiny-bart", "tiny-t5"])
def test_visual_inputs_without_a_projector_are_refused(backbone, spec):
    model = compile(spec, fresh_model(backbone))
    ids, mask, labels = batch(model)
    for key, make in VISUAL.items():
        with pytest.raises(UsageError, match=f"{key} given, but this model's design has no visual projector"):
            model(input_ids=ids, attention_mask=mask, labels=labels, **{key: make()})
    with pytest.raises(UsageError, match="no visual projector"):
        model.generate(ids, attention_mask=mask, max_new_tokens=2, vis_feats=VISUAL["vis_feats"]())
    # given encoder outputs, the encoder does not run: the decoder refuses them too
    encoded = model.get_encoder()(input_ids=ids, attention_mask=mask)
    with pytest.raises(UsageError, match="no visual projector"):
        model(encoder_outputs=encoded, attention_mask=mask, labels=labels, vis_boxes=VISUAL["vis_boxes"]())
    out = model.generate(ids, attention_mask=mask, max_new_tokens=3, num_beams=2)
    assert out.shape[0] == 2
    model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()


def test_a_design_without_prefix_runs_the_original_encoder_exactly():
    model = compile("train encoder.layernorm", fresh_model("tiny-bart"))
    reference = fresh_model("tiny-bart")
    ids, mask, _ = batch(model)
    with torch.no_grad():
        assert torch.equal(model.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state,
                           reference.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state)


def test_incomplete_visual_inputs_are_refused_with_a_projector():
    model = compile("projector feat_dim=16", fresh_model("tiny-bart"))
    ids, mask, labels = batch(model)
    with pytest.raises(UsageError, match="need both vis_feats .* got only vis_boxes"):
        model(input_ids=ids, attention_mask=mask, labels=labels, vis_boxes=VISUAL["vis_boxes"]())
    feats = torch.randn(2, 3, 16)
    loss = model(input_ids=ids, attention_mask=mask, labels=labels, vis_feats=feats,
                 vis_boxes=VISUAL["vis_boxes"]()).loss
    assert torch.isfinite(loss)


def test_cli_compiles_a_config_only_directory_only_with_random_weights(tmp_path, capsys):
    from vlsurgery.cli.main import main
    from vlsurgery.profiles import preset_config

    preset_config("tiny-t5").save_pretrained(tmp_path / "model")
    spec = tmp_path / "design.vls"
    spec.write_text("encoder.ffn: ia3\ntrain encoder.layernorm\n")
    argv = ["compile", str(spec), "--backbone", str(tmp_path / "model")]
    assert main(argv) != 0
    assert "has a config.json but no weights" in capsys.readouterr().err
    assert main(argv + ["--random-weights", "--seed", "4"]) == 0
    out = capsys.readouterr().out
    assert "(random weights (--random-weights, seed 4))" in out and "equal to the prediction" in out
