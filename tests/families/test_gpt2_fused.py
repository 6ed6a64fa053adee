"""GPT-2's fused c_attn and its Conv1D projections, against references written here from the formulas.

``c_attn(x) = [q | k | v]`` (d columns each); Conv1D computes ``x @ weight + bias`` with ``weight``
of shape (d_in, d_out).  A site on ``q`` reads c_attn's input x and changes columns [0, d) only:

* LoRA on q and v: ``h[:, 0:d] += s B_q A_q x`` and ``h[:, 2d:3d] += s B_v A_v x`` (s = alpha/r),
  i.e. ``weight[:, 0:d] += s (B_q A_q)^T``: two updates on one c_attn, r (d + d) parameters each;
* IA3 on k: ``h[:, d:2d] *= l``.

The references below never call vlsurgery: a forward hook on a plain model's c_attn, and a plain
model whose weights are edited by hand.
"""

import pytest
import torch
from family_models import batch, fresh_model, perturb_
from site_references import one_cat_per_site

import vlsurgery
from vlsurgery.checkpoint import MergeError, merge, merge_report
from vlsurgery.compiler.install import is_rewritten
from vlsurgery.errors import ResolutionError
from vlsurgery.methods.lora import merge_lora, unmerge_lora

GPT2 = "tiny-gpt2"
D = 32  # tiny-gpt2's width
QV = "decoder.self_attn.{q,v}: lora r=4 alpha=8\n"


def lora_sites(model, layer):
    pet = model.transformer.h[layer].pet
    return pet["self_attn_q"].delta, pet["self_attn_v"].delta


def logits(model, ids, mask):
    with torch.no_grad():
        return model(ids, attention_mask=mask).logits


def test_lora_on_q_and_v_is_two_updates_on_column_slices_of_one_c_attn():
    model = perturb_(vlsurgery.compile(QV, fresh_model(GPT2), seed=0))
    ids, mask, _ = batch(model)
    ref = fresh_model(GPT2)

    def by_hand(layer):  # the formula, on the plain model's c_attn output
        (q, v) = lora_sites(model, layer)

        def hook(module, args, out):
            x = args[0]
            out = out.clone()
            out[..., 0:D] += 2.0 * (x @ q.A.t() @ q.B.t())
            out[..., 2 * D:3 * D] += 2.0 * (x @ v.A.t() @ v.B.t())
            return out
        return hook

    handles = [ref.transformer.h[i].attn.c_attn.register_forward_hook(by_hand(i)) for i in range(2)]
    expected = logits(ref, ids, mask)
    for handle in handles:
        handle.remove()
    torch.testing.assert_close(logits(model, ids, mask), expected, rtol=0, atol=1e-6)
    assert not torch.allclose(expected, logits(ref, ids, mask), atol=1e-3)  # the updates matter

    # the same, as a weight edit: weight[:, slice] += s (B A)^T, k's columns untouched
    with torch.no_grad():
        for i in range(2):
            q, v = lora_sites(model, i)
            w = ref.transformer.h[i].attn.c_attn.weight
            w[:, 0:D] += 2.0 * (q.B @ q.A).t()
            w[:, 2 * D:] += 2.0 * (v.B @ v.A).t()
    torch.testing.assert_close(logits(model, ids, mask), logits(ref, ids, mask), rtol=0, atol=1e-5)


def test_lora_on_a_slice_counts_its_own_columns_only():
    one = vlsurgery.count("decoder.self_attn.q: lora r=8", "gpt2")
    assert one.trainable == 12 * 8 * (768 + 768)                  # r (d + d), not r (d + 3d)
    assert vlsurgery.count(QV.replace("r=4 alpha=8", "r=8"), "gpt2").trainable == 2 * one.trainable
    assert vlsurgery.count("decoder.self_attn.qkv: lora r=8", "gpt2").trainable == 12 * 8 * (768 + 3 * 768)
    assert vlsurgery.count("decoder.self_attn.k: ia3", "gpt2").trainable == 12 * 768
    assert vlsurgery.count("decoder.ffn.in: lora r=8", "gpt2").trainable == 12 * 8 * (768 + 3072)
    assert vlsurgery.count("decoder.ffn.out: lite r=8", "gpt2").trainable == 12 * (3072 * 8 + 8 + 8 * 768 + 768)


def test_ia3_on_k_scales_k_columns_only():
    model = perturb_(vlsurgery.compile("decoder[0].self_attn.k: ia3", fresh_model(GPT2), seed=0))
    c_attn, ref = model.transformer.h[0].attn.c_attn, fresh_model(GPT2).transformer.h[0].attn.c_attn
    x = torch.randn(2, 5, D)
    with torch.no_grad():
        got, plain = c_attn(x), ref(x)
    scale = model.transformer.h[0].pet["self_attn_k"].scale
    assert torch.equal(got[..., :D], plain[..., :D]) and torch.equal(got[..., 2 * D:], plain[..., 2 * D:])
    torch.testing.assert_close(got[..., D:2 * D], plain[..., D:2 * D] * scale, rtol=0, atol=0)


def test_sites_on_plain_conv1d_follow_the_formulas():
    """LoRA on c_fc (ffn.in) and lite on the attention's c_proj (o): Conv1D, no slice."""
    spec = "decoder[1].ffn.in: lora r=2 alpha=2\ndecoder[1].self_attn.o: lite r=4\n"
    model = perturb_(vlsurgery.compile(spec, fresh_model(GPT2), seed=0))
    layer, ref = model.transformer.h[1], fresh_model(GPT2).transformer.h[1]
    x = torch.randn(2, 5, D)
    lora, lite = layer.pet["ffn_in"].delta, layer.pet["self_attn_o"].delta
    with torch.no_grad():
        expected = x @ ref.mlp.c_fc.weight + ref.mlp.c_fc.bias + x @ lora.A.t() @ lora.B.t()
        torch.testing.assert_close(layer.mlp.c_fc(x), expected, rtol=1e-6, atol=1e-6)
        bottleneck = lite.up(torch.nn.functional.gelu(lite.down(x), approximate="tanh"))
        expected = x @ ref.attn.c_proj.weight + ref.attn.c_proj.bias + bottleneck
        torch.testing.assert_close(layer.attn.c_proj(x), expected, rtol=1e-6, atol=1e-6)


MERGEABLE = """
decoder.self_attn.{q,v}: lora r=4
decoder.self_attn.k: ia3
decoder[0].self_attn.o: lora r=2 granularity=vector
decoder.ffn.in: ia3
decoder[1].ffn.out: lora r=2
"""


def test_merge_folds_conv1d_and_column_slices_with_the_same_logits():
    model = perturb_(vlsurgery.compile(MERGEABLE, fresh_model(GPT2), seed=0)).eval()
    ids, mask, _ = batch(model)
    before = logits(model, ids, mask)
    merged = merge(model)
    assert not any(is_rewritten(m) for m in merged.modules())
    assert type(merged).__name__ == "GPT2LMHeadModel"
    assert set(merged.state_dict()) == set(fresh_model(GPT2).state_dict())
    torch.testing.assert_close(logits(merged, ids, mask), before, rtol=1e-5, atol=1e-5)
    base = fresh_model(GPT2)
    w, w0 = merged.transformer.h[1].attn.c_attn.weight, base.transformer.h[1].attn.c_attn.weight
    assert all(not torch.equal(w[:, s], w0[:, s]) for s in (slice(0, D), slice(D, 2 * D), slice(2 * D, None)))
    assert torch.equal(merged.transformer.h[0].mlp.c_proj.weight, base.transformer.h[0].mlp.c_proj.weight)


def test_merge_with_only_q_and_v_leaves_k_columns_bit_for_bit():
    model = perturb_(vlsurgery.compile(QV, fresh_model(GPT2), seed=0)).eval()
    merge(model)
    w, w0 = model.transformer.h[0].attn.c_attn, fresh_model(GPT2).transformer.h[0].attn.c_attn
    assert torch.equal(w.weight[:, D:2 * D], w0.weight[:, D:2 * D]) and torch.equal(w.bias, w0.bias)


def test_merge_refuses_lite_on_a_slice_with_the_reason_and_changes_nothing():
    model = perturb_(vlsurgery.compile(QV + "decoder.self_attn.k: lite r=4\n", fresh_model(GPT2), seed=0)).eval()
    ids, mask, _ = batch(model)
    before = logits(model, ids, mask)
    with pytest.raises(MergeError, match=r"(?s)decoder\[0\].self_attn.k \(lite\): .*GELU"):
        merge(model)
    assert torch.equal(logits(model, ids, mask), before)


def test_partial_merge_folds_slices_beside_a_site_that_cannot_fold():
    """lite on k cannot fold, but q and v own other columns of c_attn: they fold around it; an IA3 on
    the whole qkv reads k's columns after lite, so it stays."""
    spec = QV + "decoder.self_attn.k: lite r=4\ndecoder[0].self_attn.qkv: ia3\n"
    report = merge_report(spec, "tiny-gpt2")
    assert {s.path for s in report.merged} == {f"decoder[{i}].self_attn.{r}" for i in (0, 1) for r in "qv"}
    (qkv,) = [s for s in report.kept if s.path.endswith("qkv")]
    assert "follows decoder[0].self_attn.k" in qkv.reason
    model = perturb_(vlsurgery.compile(spec, fresh_model(GPT2), seed=0)).eval()
    ids, mask, _ = batch(model)
    before = logits(model, ids, mask)
    with pytest.warns(UserWarning, match="kept 3 site"):
        merge(model, partial=True)
    torch.testing.assert_close(logits(model, ids, mask), before, rtol=1e-5, atol=1e-5)
    c_attn = model.transformer.h[0].attn.c_attn
    assert [(type(m.delta).__name__ if hasattr(m, "delta") else type(m).__name__, cols)
            for m, cols in c_attn._vls_sites] == [("Bottleneck", (D, 2 * D)), ("IA3", None)]
    assert set(model.transformer.h[0].pet) == {"self_attn_k", "self_attn_qkv"}


def test_merge_lora_by_hand_on_a_column_slice_and_back():
    model = perturb_(vlsurgery.compile(QV, fresh_model(GPT2), seed=0)).eval()
    site = model.transformer.h[0].pet["self_attn_v"]
    c_attn = model.transformer.h[0].attn.c_attn
    x = torch.randn(2, 5, D)
    with torch.no_grad():
        before, w0 = c_attn(x), c_attn.weight.detach().clone()
        merge_lora(site, c_attn, (2 * D, 3 * D))  # the module now adds nothing; the weight has it
        torch.testing.assert_close(c_attn(x), before, rtol=1e-5, atol=1e-5)
        assert torch.equal(c_attn.weight[:, :2 * D], w0[:, :2 * D])
        unmerge_lora(site, c_attn, (2 * D, 3 * D))
        torch.testing.assert_close(c_attn.weight, w0, rtol=0, atol=1e-6)
    with pytest.raises(vlsurgery.UsageError, match=r"Conv1D with 32 inputs and 32 outputs \(output columns"):
        merge_lora(site, c_attn, (0, 2 * D))


@pytest.mark.parametrize("statement", ["decoder.cross_attn: adapter", "encoder.ffn: adapter",
                                       "decoder.ffn.gate: lora"])
def test_an_address_gpt2_lacks_lists_its_roles(statement):
    with pytest.raises(ResolutionError, match=r"(?s)matches no site of tiny-gpt2.*expected an address of decoder.input, "
                                              r"decoder.self_attn, decoder.self_attn.q, decoder.self_attn.k, "
                                              r"decoder.self_attn.v, decoder.self_attn.o, decoder.self_attn.qkv"):
        vlsurgery.count(statement, "tiny-gpt2")


def test_training_part_of_the_fused_bias_is_refused():
    with pytest.raises(ResolutionError, match=r"(?s)column slice of the fused attn.c_attn.*"
                                              r"train decoder.self_attn.qkv.bias"):
        vlsurgery.plan("train decoder.self_attn.q.bias", "tiny-gpt2")
    assert vlsurgery.plan("train decoder.self_attn.qkv.bias", "tiny-gpt2").train == (
        "transformer.h.0.attn.c_attn.bias", "transformer.h.1.attn.c_attn.bias")


def test_sublayer_sites_read_the_unnormalised_residual_and_replace_the_output_before_the_add():
    """A GPT-2 block written out by hand: X = the block's input (before ln_1), H = attn's output
    (before the residual add); then X = the residual after attention (before ln_2), H = mlp's output."""
    spec = ("decoder.self_attn: adapter r=8 placement=parallel granularity=token\n"
            "decoder.ffn: adapter r=4 granularity=matrix gate_r=4\n")
    model = perturb_(vlsurgery.compile(spec, fresh_model(GPT2), seed=0)).eval()
    block, plain = model.transformer.h[1], fresh_model(GPT2).transformer.h[1]
    x = torch.randn(2, 5, D, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        h = plain.attn(plain.ln_1(x))[0]
        mid = x + block.pet["self_attn"](x, h)
        m = plain.mlp(plain.ln_2(mid))
        expected = mid + block.pet["ffn"](mid, m)
        torch.testing.assert_close(block(x), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("spec", [QV, QV + "decoder.self_attn.qkv: ia3\ndecoder.self_attn.k: ia3\n"])
def test_column_sites_give_the_per_site_formula_bit_for_bit(spec):
    c_attn = perturb_(vlsurgery.compile(spec, fresh_model(GPT2), seed=0)).eval().transformer.h[0].attn.c_attn
    x = torch.randn(2, 5, D)
    with torch.no_grad():
        expected = one_cat_per_site(c_attn._vls_sites, x, x @ c_attn.weight + c_attn.bias)
        assert torch.equal(c_attn(x), expected)


def test_two_column_sites_on_c_attn_cost_one_concatenation():
    """LoRA on q and v: each slice is cut once and written back with one torch.cat, not one full
    copy of the (B, N, 3d) output per site."""
    c_attn = vlsurgery.compile(QV, fresh_model(GPT2), seed=0).eval().transformer.h[0].attn.c_attn
    assert [cols for _, cols in c_attn._vls_sites] == [(0, D), (2 * D, 3 * D)]
    with torch.no_grad(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        c_attn(torch.randn(2, 5, D))
    assert sum(event.name == "aten::cat" for event in prof.events()) == 1
