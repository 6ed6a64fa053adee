"""Counting a 7B decoder-only preset is instant and never imports torch; a compiled tiny-llama runs
under ``torch.compile``; the shipped ``specs/llama`` designs compile onto tiny-llama with the counts
``vlsurgery count`` predicts."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from llama_models import batch, fresh_model

import vlsurgery

SPECS = sorted((Path(__file__).resolve().parents[2] / "specs" / "llama").glob("*.vls"))

COUNT_7B = """
import sys, time
import vlsurgery
start = time.perf_counter()
counted = vlsurgery.count("decoder.self_attn.{q,v}: lora r=8\\ndecoder.{self_attn,ffn}: adapter r=64 granularity=large",
                          "mistral-7b")
elapsed = time.perf_counter() - start
assert "torch" not in sys.modules, "counting imported torch"
print(elapsed, counted.total, counted.trainable)
"""


def test_counting_a_7b_preset_is_fast_and_never_imports_torch():
    out = subprocess.run([sys.executable, "-c", COUNT_7B], capture_output=True, text=True, check=True).stdout.split()
    elapsed, total, trainable = float(out[0]), int(out[1]), int(out[2])
    assert elapsed < 0.5
    # LoRA r=8 on q (4096 -> 4096) and v (4096 -> 1024, GQA); two sublayer adapters with large gates
    lora = 8 * (4096 + 4096) + 8 * (4096 + 1024)
    adapter = 2 * (4096 * 64 + 64 + 64 * 4096 + 4096)
    assert trainable > 32 * (lora + adapter) and total == 7_241_732_096 + trainable


def test_torch_compile_runs_a_compiled_model():
    model = vlsurgery.compile("decoder.{self_attn,ffn}: adapter r=8 granularity=large\ndecoder.self_attn.{q,v}: lora r=2",
                              fresh_model("tiny-llama"), seed=0).eval()
    ids, mask, _ = batch(model)
    with torch.no_grad():
        expected = model(ids, attention_mask=mask).logits
        got = torch.compile(model)(ids, attention_mask=mask).logits
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_shipped_llama_specs_compile_with_the_predicted_counts(path):
    predicted = vlsurgery.count(path, "tiny-llama")
    model = vlsurgery.compile(path, fresh_model("tiny-llama"), seed=0)
    assert predicted.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad) > 0
    assert predicted.total == sum(p.numel() for p in model.parameters())
    ids, mask, labels = batch(model)
    model(ids, attention_mask=mask, labels=labels).loss.backward()


def test_the_llama_spec_library_is_there():
    assert {p.stem for p in SPECS} >= {"lora-qv", "ia3", "prompt-tuning", "vl-pet-large"}
