"""The shipped ``specs/llava`` library: its counts on LLaVA-1.5-7B by hand arithmetic (instant, torch
never imported), and every design compiles onto tiny-llava with the counts ``vlsurgery count``
predicts, and trains."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import vlsurgery
from vlsurgery.cli.main import main
from vlsurgery.profiles.backbone import load_model

SPECS = Path(__file__).resolve().parents[2] / "specs" / "llava"
NAMES = ("vl-pet", "vl-pet-small", "vl-pet-middlex", "vl-pet-middley", "vl-pet-large", "lora", "ia3")
LLAVA_7B = 7_063_427_072


def bottleneck(d_in, r, d_out):  # Down d_in -> r and Up r -> d_out, both Linear with bias
    return d_in * r + r + r * d_out + d_out


def expected_7b(name):
    """(trainable, added) of a library design on LLaVA-1.5-7B: a CLIP ViT-L/14 tower of which LLaVA
    reads 23 layers (d = 1024), a Llama of 32 layers (d = 4096, d_ff = 11008, 32 key-value heads)."""
    if name == "lora":  # rank 8 on q and v: A (8 x 4096) and B (4096 x 8) each
        added = 32 * 2 * (8 * 4096 + 4096 * 8)
        return added, added
    if name == "ia3":   # one vector per output channel of k, v (4096) and up (11008)
        added = 32 * (4096 + 4096 + 11008)
        return added, added
    d = 1024
    gates = {"vl-pet": 0, "vl-pet-small": 2 * d + 1, "vl-pet-middlex": d + 1, "vl-pet-middley": d,
             "vl-pet-large": bottleneck(d, 128, d)}
    vision = 23 * 2 * (bottleneck(d, 128, d) + gates[name])  # self_attn and ffn of the 23 layers read
    lite = 32 * bottleneck(4096, 512, 4096)                    # decoder.self_attn.v: lite r=512
    norms = 23 * 2 * 2 * d + 2 * d                             # layer_norm1/2 of 23 layers + pre_layrnorm
    projector = (1024 * 4096 + 4096) + (4096 * 4096 + 4096)  # linear_1, linear_2 of the model's projector
    return vision + lite + norms + projector, vision + lite


COUNT_ALL = """
import sys, time
import vlsurgery
for name in sys.argv[1:]:
    start = time.perf_counter()
    c = vlsurgery.count(f"{name}", "llava-1.5-7b")
    print(name.rsplit("/", 1)[-1][:-4], time.perf_counter() - start, c.trainable, c.added, c.total)
assert "torch" not in sys.modules, "counting imported torch"
"""


def test_counts_on_llava_7b_are_exact_instant_and_never_import_torch():
    paths = [str(SPECS / f"{name}.vls") for name in NAMES]
    out = subprocess.run([sys.executable, "-c", COUNT_ALL, *paths], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()]
    assert [row[0] for row in rows] == list(NAMES)
    for name, elapsed, trainable, added, total in rows:
        assert (int(trainable), int(added)) == expected_7b(name), name
        assert int(total) == LLAVA_7B + int(added)
    assert float(rows[0][1]) < 0.5, rows[0]  # the first count pays for the imports and the profile


@pytest.mark.parametrize("name", NAMES)
def test_library_designs_compile_onto_tiny_llava(name):
    path = SPECS / f"{name}.vls"
    assert main(["check", "-q", str(path)]) == 0
    predicted = vlsurgery.count(path, "tiny-llava")
    model = vlsurgery.compile(path, load_model("tiny-llava", seed=0)[0], seed=0).train()
    assert predicted.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad) > 0
    assert predicted.total == sum(p.numel() for p in model.parameters())
    config = model.config
    ids = torch.tensor([[5, 6] + [config.image_token_id] * config.image_seq_length + [7, 8]])
    pixels = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    labels = ids.masked_fill(ids == config.image_token_id, -100)
    model(input_ids=ids, pixel_values=pixels, labels=labels).loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_the_library_lists_the_llava_designs(capsys):
    assert main(["specs", "llava"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == sorted(f"lib:llava/{name}.vls" for name in NAMES)
