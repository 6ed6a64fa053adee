"""The benchmark's references and its report (benchmarks/): no timing is asserted here, ever.

* the hand-fused and paper-style references compute what the compiled model computes, given the
  compiled model's weights (otherwise their time ratios would mean nothing), and train as many
  parameters;
* work parity, exactly: a rewritten encoder layer runs no aten operator more often than the
  hand-fused layer (forward and backward), and neither does a whole train step (prefix, mask
  extension, forward, backward, optimizer): every operator kind is run exactly as often as by the
  hand-fused step; one generate() call (greedy, beam) of the compiled model with identity sites runs
  no operator more often than the hand-fused reference, and adds over the original model only the
  sites' one-time arithmetic (the same count at n and 2n new tokens);
* ``python -m benchmarks.run --tiny`` writes a report with every section and target;
* the GPU script skips cleanly without CUDA.
"""

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the benchmarks package lives at the repository root, next to vlsurgery
    sys.path.insert(0, str(ROOT))

from benchmarks.compiler_cost import _fit  # noqa: E402
from benchmarks.measure import Ratio, layout_differences, operator_layouts, profile_work  # noqa: E402
from benchmarks.references import reference_inputs  # noqa: E402
from benchmarks.workloads import TINY, build_variants, trainable, variant_steps  # noqa: E402

BACKBONES = ["tiny-bart", "tiny-t5"]


@pytest.fixture(scope="module", params=BACKBONES)
def variants(request):
    return build_variants(request.param, TINY)


def first_encoder_layer(model):
    stack = model.get_encoder()
    return stack.layers[0] if hasattr(stack, "layers") else stack.block[0]


def test_references_compute_the_compiled_models_function(variants):
    models = {"compiled": variants.compiled, "fused": variants.fused, "paper": variants.paper}
    for model in models.values():
        model.eval()
    try:
        with torch.no_grad():
            want = variants.compiled(**variants.batch).logits
            for name in ("fused", "paper"):
                got = models[name](**reference_inputs(models[name], variants.batch)).logits
                assert got.shape == want.shape
                torch.testing.assert_close(got, want, rtol=0, atol=1e-5, msg=name)
    finally:
        for model in models.values():
            model.train()
    counts = {name: sum(p.numel() for p in trainable(model)) for name, model in models.items()}
    assert len(set(counts.values())) == 1, counts
    assert not trainable(variants.floor)


def test_the_added_weights_are_not_trivial(variants):
    """Every added weight is non-zero (zero-initialised ones were randomised), so equality above
    checks every term of every formula."""
    for name, p in variants.compiled.named_parameters():
        if ".pet." in f".{name}":
            assert p.any(), name


def layer_work(layer, x):
    def run():
        out = layer(x, attention_mask=None)
        out = out[0] if isinstance(out, tuple) else out
        out.sum().backward()
    run()
    return profile_work(run)


def test_rewritten_layer_runs_no_more_operators_than_the_hand_fused_layer(variants):
    x = torch.randn(2, 5, variants.compiled.config.d_model, requires_grad=True)
    compiled = layer_work(first_encoder_layer(variants.compiled), x)
    fused = layer_work(first_encoder_layer(variants.fused), x)
    assert compiled.excess_over(fused) == {}
    assert sum(compiled.ops.values()) > 50  # forward and backward were profiled


def test_train_step_runs_exactly_the_hand_fused_steps_operators(variants):
    steps = variant_steps(variants)
    for name in ("compiled", "fused"):
        steps[name]()
    compiled, fused = profile_work(steps["compiled"]), profile_work(steps["fused"])
    assert compiled.excess_over(fused) == {}
    assert fused.excess_over(compiled) == {}  # equal: the hand-fused step is no leaner either
    assert sum(compiled.ops.values()) > 1000  # forward, backward and the optimizer were profiled
    assert compiled.peak_bytes <= 1.02 * fused.peak_bytes
    # and on the same shapes and memory layouts (a strided input would cost time, not operators)
    assert layout_differences(operator_layouts(steps["compiled"]), operator_layouts(steps["fused"])) == 0


@pytest.fixture(scope="module", params=BACKBONES)
def identity(request):
    from benchmarks.generation import generate_inputs, identity_models

    models = identity_models(request.param)
    return models, generate_inputs(models["original"], TINY, 2)


@pytest.mark.parametrize("beams", [1, 2])
def test_generate_runs_only_the_identity_sites_arithmetic(identity, beams):
    models, inputs = identity
    work, added = {}, []
    with torch.no_grad():
        for new in (2, 4):
            run = dict(inputs, max_new_tokens=new, min_new_tokens=new, num_beams=beams)
            work = {name: profile_work(lambda m=m: m.generate(**run)) for name, m in models.items()}
            added.append(sum(work["compiled"].ops.values()) - sum(work["original"].ops.values()))
        assert torch.equal(models["compiled"].generate(**run), models["original"].generate(**run))
    assert work["compiled"].excess_over(work["fused"]) == {}
    assert added[0] == added[1] > 0  # one-time work per call (the sites' arithmetic), nothing per new token
    sites = {"aten::linear", "aten::addmm", "aten::gelu", "aten::sigmoid", "aten::mul", "aten::add"}
    assert sites <= set(work["compiled"].excess_over(work["original"]))


def test_ratio_and_line_fit():
    r = Ratio.of([1.0, 1.2, 0.9])
    assert (r.median, r.low, r.high, r.rounds) == (1.0, 0.9, 1.2, 3)
    fit = _fit([(6, 0.1), (12, 0.2), (24, 0.4)])
    assert fit["seconds_per_layer"] == pytest.approx(1 / 60, abs=1e-5) and fit["max_relative_deviation"] < 1e-6


def test_tiny_run_writes_a_complete_report(tmp_path):
    from benchmarks.run import main

    out, raw = tmp_path / "RESULTS.md", tmp_path / "results.json"
    assert main(["--tiny", "--threads", "1", "--out", str(out), "--json", str(raw)]) == 0
    text = out.read_text()
    for heading in ("## Targets", "## 1. Training step", "## 2. LoRA", "## 3. Compiler cost", "## 4. generate()",
                    "## 5. torch.compile", "## GPU", "Machine:", "Versions:"):
        assert heading in text, heading
    assert "compiled/fused" in text and "(min-max)" in text
    results = json.loads(raw.read_text())
    step = results["step"][0]
    assert set(step["time"]) == {"compiled/fused", "compiled/paper", "compiled/floor", "fused/floor", "paper/floor"}
    assert step["time"]["compiled/fused"]["rounds"] == 2
    generated = results["generate"][0]
    for mode in ("greedy", "beam"):
        g = generated[mode]
        assert g["same_tokens"] and g["over_fused"] == {}
        assert 0 < g["matmul_flops"]["original"] < g["matmul_flops"]["compiled"]  # identity sites still compute
        assert set(g["tokens_per_s"]) == {"compiled", "fused", "original"}
    assert "compiled/hand-fused >= 0.98" in text and "FLOP ratio" in text
    assert step["layout_differences"] == 0 and step["ops_compiled_over_fused"] == {}
    assert [row["layers"] for row in results["compile"]["rows"]] == [2, 4]


def test_gpu_script_skips_without_cuda(capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available: the GPU script would really run")
    from benchmarks.gpu_step import main

    assert main([]) == 0
    assert "CUDA" in capsys.readouterr().out
