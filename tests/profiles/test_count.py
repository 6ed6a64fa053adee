"""Exact counts: hand arithmetic from docs/paper.md, and equality with the modules actually built."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from torch import nn

from helpers import build_meta
from vlsurgery.methods.initializers import backbone_init
from vlsurgery.methods.registry import build_projector, get
from vlsurgery.planning import count, plan
from vlsurgery.profiles import preset_config
from vlsurgery.spec import parse

SPECS = Path(__file__).resolve().parents[2] / "specs"
ALL_SPECS = sorted(str(p.relative_to(SPECS)) for p in SPECS.rglob("*.vls"))


def bottleneck(d_in, r, d_out):           # Down d_in -> r and Up r -> d_out, both Linear with bias
    return d_in * r + r + r * d_out + d_out


def layernorm(d):
    return 2 * d


def test_demo_on_tiny_bart_by_hand():
    c = count(SPECS / "examples/demo.vls")
    d, r = 32, 8
    site = bottleneck(d, r, d) + bottleneck(d, r, d)              # adapter + G_large with r_g = r
    sites = 4 * site + 2 * bottleneck(d, r, d)                      # enc self_attn/ffn x 2 layers, dec v x 2
    norms = 2 * 2 * layernorm(d) + layernorm(d)                     # per-layer norms + layernorm_embedding
    projector = (16 * d + d) + (5 * d + d) + 2 * d + 2 * layernorm(d)
    # tiny-bart: vocab 128, 66 learned positions per stack, ffn 64, 2 + 2 layers
    attn = 4 * (d * d + d)
    ffn = (d * 64 + 64) + (64 * d + d)
    base = 128 * d + 2 * 66 * d + 2 * (attn + ffn + 2 * layernorm(d)) + 2 * (2 * attn + ffn + 3 * layernorm(d)) \
        + 2 * layernorm(d)
    assert c.base == base == 51_200
    assert c.trainable == sites + norms + projector == 6_768
    assert c.total == base + sites + projector
    assert c.trainable_percent == 100 * c.trainable / c.total
    assert c.by_stack == {"encoder": 4 * site + norms, "decoder": 2 * bottleneck(d, r, d), "projector": projector}


def test_tiny_t5_by_hand():
    c = count(parse("projector feat_dim=8\ntrain encoder.layernorm, projector\n"
                    "encoder.ffn: adapter r=4 granularity=small scale=0.3\n"
                    "decoder.cross_attn.v: lite r=4\nencoder.input: prompt length=5 init=normal"), "tiny-t5")
    d, inner, vocab, ff = 32, 24, 128, 64
    enc_ffn = bottleneck(d, 4, d) + (2 * d + 1)                    # G_small: Linear 2d -> 1
    lite = bottleneck(d, 4, inner)                                  # v maps d -> n_heads * d_kv
    prompt = 5 * d
    norms = 2 * 2 * d + d                                           # T5LayerNorm: weight only
    projector = (8 * d + d) + (5 * d + d) + 2 * d + 2 * d
    enc_block = 4 * d * inner + 2 * d + 2 * d * ff
    dec_block = 8 * d * inner + 3 * d + 2 * d * ff
    base = vocab * d + 2 * enc_block + 2 * dec_block + 2 * (8 * 4) + 2 * d   # + rel. bias of block 0, final norms
    assert c.base == base
    assert c.trainable == 2 * enc_ffn + 2 * lite + prompt + norms + projector
    assert c.total == base + 2 * enc_ffn + 2 * lite + prompt + projector


BART_BASE, T5_BASE = 139_420_416, 222_903_552


def paper_expected(backbone, gate):
    d = 768
    r, base = (96, BART_BASE) if backbone == "bart-base" else (192, T5_BASE)
    gates = {"small": 2 * d + 1, "middlex": d + 1, "middley": d, "large": bottleneck(d, r, d)}
    encoder = 12 * (bottleneck(d, r, d) + gates[gate])               # self_attn + ffn on 6 (BART) / 12 (T5) layers
    if backbone == "t5-base":
        encoder *= 2
    decoder = (6 if backbone == "bart-base" else 12) * bottleneck(d, 96, d)
    if backbone == "bart-base":
        norms, norm = 6 * 2 * layernorm(d) + layernorm(d), layernorm(d)
    else:
        norms, norm = 12 * 2 * d + d, d
    projector = (2048 * d + d) + (5 * d + d) + 2 * d + 2 * norm
    trainable = encoder + decoder + norms + projector
    return trainable, base + encoder + decoder + projector


@pytest.mark.parametrize("backbone", ["bart-base", "t5-base"])
@pytest.mark.parametrize("gate", ["small", "middlex", "middley", "large"])
def test_paper_configurations(backbone, gate):
    c = count(SPECS / f"paper/{backbone}/vl-pet-{gate}.vls")
    assert (c.trainable, c.total) == paper_expected(backbone, gate)


def test_vl_adapter_by_hand():
    d = 768
    c = count(SPECS / "paper/bart-base/vl-adapter.vls")
    sites = (6 * 2 + 6 * 3) * bottleneck(d, d // 8, d)
    norms = (6 * 2 + 1) * layernorm(d) + (6 * 3 + 1) * layernorm(d)
    projector = (2048 * d + d) + (5 * d + d) + 2 * d + 2 * layernorm(d)
    assert c.trainable == sites + norms + projector
    assert c.total == BART_BASE + sites + projector


def built_count(p) -> tuple[int, int]:
    """(trainable, total) from really built modules: sites, shared, projector and the meta base model."""
    shared = nn.ParameterDict()
    embedding = nn.Embedding(p.profile.vocab_size, p.profile.d_model)
    added = 0
    for site in p.sites:
        module = get(site.method).build(site.params, site.dims, shared_params=shared, token_embedding=embedding,
                                        backbone_init=backbone_init(p.config))
        own = sum(t.numel() for t in module.parameters())
        in_shared = sum(t.numel() for t in module.parameters() if any(t is s for s in shared.values()))
        assert own - in_shared == site.trainable, site.path
        added += own - in_shared
    added += sum(t.numel() for t in shared.values())
    projector = 0
    if p.projector is not None:
        proj = build_projector(p.projector, p.profile.d_model, embedding, norm=p.profile.norm.kind,
                               backbone_init=backbone_init(p.config))
        projector = sum(t.numel() for t in proj.parameters())
    base_model = build_meta(p.config, p.profile)
    named = dict(base_model.named_parameters())
    base = sum(t.numel() for t in named.values())
    base_trainable = sum(named[n].numel() for n in p.train)
    return added + base_trainable + (projector if p.train_projector else 0), base + added + projector


# every shipped spec on its own backbone (Table 9: the base designs and two gates each, to stay
# fast; the LLaVA designs add real-size modules to a 7B model, tests/families compiles them instead)
@pytest.mark.parametrize("spec", [s for s in ALL_SPECS if "t5-base" not in s and "prompt" not in s
                                  and not s.startswith("llava/")
                                  and not s.endswith(("-middlex.vls", "-middley.vls"))] + [
    "paper/t5-base/vl-pet-large.vls", "paper/bart-base/vl-pet-middlex.vls", "paper/bart-base/vl-pet-middley.vls"])
def test_counts_equal_built_modules(spec):
    p = plan(SPECS / spec)
    c = count(p)
    assert (c.trainable, c.total) == built_count(p)


@pytest.mark.parametrize("backbone", ["tiny-bart", "tiny-t5", "tiny-t5-gated"])
def test_counts_equal_built_modules_on_tiny_backbones(backbone):
    text = """projector feat_dim=8 images=3
train *.layernorm, projector
encoder.{self_attn,ffn}: compacter r=8 n=2 granularity=vector
decoder.self_attn.{q,v}: lora r=2 granularity=vector
decoder.cross_attn: gate granularity=matrix gate_r=4
decoder.ffn.*: ia3
encoder.input: prompt length=4
decoder[-1].cross_attn.o: adapter r=4 placement=parallel
"""
    p = plan(parse(text), backbone)
    assert p.shared                                            # compacter's shared rule counted once
    c = count(p)
    assert (c.trainable, c.total) == built_count(p)


def test_model_instance_counts_its_own_parameters():
    from transformers import BartForConditionalGeneration

    model = BartForConditionalGeneration(preset_config("tiny-bart"))
    c = count(SPECS / "examples/demo.vls", model)
    assert c.base == sum(t.numel() for t in model.parameters()) == count(SPECS / "examples/demo.vls").base


def test_t5_3b_counts_fast():
    spec = parse("projector\ntrain encoder.layernorm, projector\nencoder.{self_attn,ffn}: adapter r=192 heads=4 "
                 "granularity=large\ndecoder.cross_attn.v: lite r=96")
    count(spec, "tiny-t5")  # warm imports
    start = time.perf_counter()
    c = count(spec, "t5-3b")
    elapsed = time.perf_counter() - start
    assert c.base == 2_851_598_336
    assert elapsed < 1.0, elapsed
