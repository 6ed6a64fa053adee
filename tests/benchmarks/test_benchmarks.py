"""The benchmark's references and its report (benchmarks/): no timing is asserted here, ever.

* the hand-fused and paper-style references compute what the compiled model computes, given the
  compiled model's weights (otherwise their time ratios would mean nothing), and train as many
  parameters;
* work parity, exactly: a rewritten encoder layer runs no aten operator more often than the
  hand-fused layer (forward and backward); over a whole train step, the only operators the compiled
  model runs more often are the prefix pass's bookkeeping (a second extension of the attention mask
  in the decoder, dtype casts that return their input), never arithmetic on activations;
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
from benchmarks.measure import Ratio, profile_work  # noqa: E402
from benchmarks.references import reference_inputs  # noqa: E402
from benchmarks.workloads import TINY, build_variants, trainable, variant_steps  # noqa: E402

BACKBONES = ["tiny-bart", "tiny-t5"]

#: what the prefix pass may run more often than a hand-written prefix: mask bookkeeping and no-op casts
PREFIX_BOOKKEEPING = {"aten::to", "aten::cat", "aten::new_ones", "aten::new_empty", "aten::empty", "aten::fill_",
                      "aten::narrow", "aten::slice", "aten::as_strided"}


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


def test_train_step_runs_no_more_arithmetic_than_the_hand_fused_step(variants):
    steps = variant_steps(variants)
    for name in ("compiled", "fused"):
        steps[name]()
    compiled, fused = profile_work(steps["compiled"]), profile_work(steps["fused"])
    excess = compiled.excess_over(fused)
    assert set(excess) <= PREFIX_BOOKKEEPING, excess
    assert excess.get("aten::cat", 0) <= 1 and excess.get("aten::new_ones", 0) <= 1, excess
    assert compiled.peak_bytes <= 1.02 * fused.peak_bytes


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
    assert all(g["same_tokens"] for g in (results["generate"][0]["greedy"], results["generate"][0]["beam"]))
    assert [row["layers"] for row in results["compile"]["rows"]] == [2, 4]


def test_gpu_script_skips_without_cuda(capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available: the GPU script would really run")
    from benchmarks.gpu_step import main

    assert main([]) == 0
    assert "CUDA" in capsys.readouterr().out
