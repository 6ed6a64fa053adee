"""The LLaMA-layout family end to end on tiny-llama (untied, no biases) and tiny-qwen2 (tied, q/k/v
biases), both with grouped-query attention (2 key-value heads for 4 query heads).

What a user relies on: identity sites change nothing (``torch.equal``), the predicted counts are the
compiled model's, ``generate()`` with the KV cache equals ``generate(use_cache=False)`` (greedy and
beam, left-padded batch, with prompt tokens and visual tokens at the decoder input), training
lowers the loss, gradient checkpointing gives the same gradients, and a trained design survives
``state_dict`` and ``vlsurgery.save``/``restore`` exactly.
"""

import pytest
import torch
from family_models import (assert_checkpointing_keeps_the_gradients, assert_counts_are_the_models,
                           assert_save_and_restore, assert_state_dict_round_trip, assert_training_reduces_the_loss,
                           batch, fresh_model, make_identity_, perturb_, reference)
from llama_models import TINY

import vlsurgery
from vlsurgery.errors import ResolutionError, UsageError

# Every kind of site: sublayer adapters at three granularities, LoRA, lite and IA3 on attention
# projections of both widths (q: 32 -> 32, k/v: 32 -> 16 with GQA), IA3 on both feed-forward inputs.
EVERY_SITE = """
decoder.self_attn: adapter r=8 heads=4 granularity=matrix gate_r=4
decoder.ffn: adapter r=8 granularity=token
decoder[-1].ffn: adapter granularity=vector
decoder.self_attn.{q,v}: lora r=2
decoder.self_attn.k: lite r=8
decoder.ffn.in: ia3
decoder.ffn.down: adapter r=4 placement=parallel
train decoder.layernorm
"""
PROMPT = "decoder.input: prompt length=3\n"
PROJECTOR = "projector feat_dim=16\ntrain projector\n"


def identity_model(backbone, spec=EVERY_SITE):
    model = vlsurgery.compile(spec, fresh_model(backbone), seed=0)
    assert make_identity_(model) == len({s.path for s in vlsurgery.plan(spec, model).sites if s.kind != "input"})
    return model


@pytest.mark.parametrize("backbone", TINY)
def test_identity_sites_give_the_original_logits_and_tokens(backbone):
    model = identity_model(backbone)
    ref = reference(backbone, model)
    ids, mask, labels = batch(model)
    with torch.no_grad():
        got, expected = model(ids, attention_mask=mask, labels=labels), ref(ids, attention_mask=mask, labels=labels)
    assert torch.equal(got.logits, expected.logits) and torch.equal(got.loss, expected.loss)
    for kwargs in ({}, {"num_beams": 3}):
        assert torch.equal(model.generate(ids, attention_mask=mask, max_new_tokens=4, do_sample=False, **kwargs),
                           ref.generate(ids, attention_mask=mask, max_new_tokens=4, do_sample=False, **kwargs))


@pytest.mark.parametrize("backbone", TINY)
@pytest.mark.parametrize("extra", ["", PROMPT, PROMPT + PROJECTOR])
def test_predicted_counts_are_the_compiled_models(backbone, extra):
    assert_counts_are_the_models(vlsurgery.count(EVERY_SITE + extra, backbone),
                                 vlsurgery.compile(EVERY_SITE + extra, fresh_model(backbone), seed=0))


def generate_both(model, ids, mask, **kwargs):
    with torch.no_grad():
        cached = model.generate(ids, attention_mask=mask, max_new_tokens=6, do_sample=False, **kwargs)
        plain = model.generate(ids, attention_mask=mask, max_new_tokens=6, do_sample=False, use_cache=False, **kwargs)
    return cached, plain


@pytest.mark.parametrize("backbone", TINY)
@pytest.mark.parametrize("beams", [1, 3])
def test_generate_with_the_cache_equals_generate_without(backbone, beams):
    model = perturb_(vlsurgery.compile(EVERY_SITE + PROMPT, fresh_model(backbone), seed=0)).eval()
    ids, mask, _ = batch(model)
    cached, plain = generate_both(model, ids, mask, num_beams=beams)
    assert torch.equal(cached, plain)
    assert cached.shape[1] == ids.shape[1] + 6  # the prompt tokens are not part of the output


@pytest.mark.parametrize("backbone", TINY)
def test_prompt_tokens_go_before_the_text(backbone):
    model = perturb_(vlsurgery.compile(PROMPT, fresh_model(backbone), seed=0)).eval()
    ref = fresh_model(backbone)
    ids, mask, labels = batch(model)
    with torch.no_grad():
        out = model(ids, attention_mask=mask, labels=labels)
        base = ref(ids, attention_mask=mask, labels=labels)
    assert out.logits.shape == base.logits.shape  # logits of the text positions only: labels line up
    assert not torch.allclose(out.logits, base.logits)
    # the prompt is one sequence of 3 embeddings before the text: the same as feeding them by hand
    prompt = model.model.vls_prefix.prompt(2)
    embeds = torch.cat([prompt, ref.model.embed_tokens(ids)], dim=1)
    full_mask = torch.cat([torch.ones(2, 3, dtype=mask.dtype), mask], dim=1)
    positions = (full_mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        by_hand = ref(inputs_embeds=embeds, attention_mask=full_mask, position_ids=positions).logits[:, 3:]
        again = model(ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits
    real = mask.bool()  # (a pad's own position is a convention; what real tokens see is not)
    torch.testing.assert_close(again[real], by_hand[real], rtol=0, atol=1e-6)


@pytest.mark.parametrize("backbone", TINY)
def test_visual_tokens_at_the_decoder_input(backbone):
    model = perturb_(vlsurgery.compile(EVERY_SITE + PROMPT + PROJECTOR, fresh_model(backbone), seed=0)).eval()
    ids, mask, _ = batch(model)
    g = torch.Generator().manual_seed(3)
    visual = {"vis_feats": torch.randn(2, 4, 16, generator=g), "vis_boxes": torch.rand(2, 4, 4, generator=g)}
    with torch.no_grad():
        seen, blind = model(ids, attention_mask=mask, **visual).logits, model(ids, attention_mask=mask).logits
    assert seen.shape == blind.shape and not torch.allclose(seen, blind)
    # a step with the cache continues the sequence exactly (generate() with visual inputs is
    # tested in test_causal_visual_generate.py)
    with torch.no_grad():
        first = model(ids, attention_mask=mask, use_cache=True, **visual)
        nxt = first.logits[:, -1].argmax(-1, keepdim=True)
        longer = torch.cat([mask, torch.ones_like(nxt)], dim=1)
        step = model(nxt, attention_mask=longer, cache=first.cache, use_cache=True, **visual).logits[:, -1]
        whole = model(torch.cat([ids, nxt], dim=1), attention_mask=longer, **visual).logits[:, -1]
    torch.testing.assert_close(step, whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize("backbone", TINY)
def test_visual_inputs_without_a_projector_are_refused(backbone):
    model = vlsurgery.compile(EVERY_SITE, fresh_model(backbone), seed=0)
    ids, mask, _ = batch(model)
    with pytest.raises(UsageError, match="no visual projector"):
        model(ids, attention_mask=mask, vis_feats=torch.randn(2, 4, 16), vis_boxes=torch.rand(2, 4, 4))


@pytest.mark.parametrize("backbone", TINY)
def test_training_reduces_the_loss(backbone):
    model = vlsurgery.compile(EVERY_SITE + PROMPT, fresh_model(backbone), seed=0).train()
    ids, mask, labels = batch(model)
    assert_training_reduces_the_loss(model, lambda m: m(ids, attention_mask=mask, labels=labels).loss)


@pytest.mark.parametrize("backbone", TINY)
def test_gradient_checkpointing_gives_the_same_gradients(backbone):
    ids, mask, labels = batch(fresh_model(backbone))
    assert_checkpointing_keeps_the_gradients(
        lambda: perturb_(vlsurgery.compile(EVERY_SITE + PROMPT, fresh_model(backbone), seed=0)),
        lambda m: m(ids, attention_mask=mask, labels=labels).loss)


@pytest.mark.parametrize("backbone", TINY)
def test_state_dict_round_trip_is_strict_and_exact(backbone):
    model = perturb_(vlsurgery.compile(EVERY_SITE + PROMPT, fresh_model(backbone), seed=0))
    again = vlsurgery.compile(EVERY_SITE + PROMPT, fresh_model(backbone), seed=1)
    ids, mask, _ = batch(model)
    assert_state_dict_round_trip(model, again, lambda m: m(ids, attention_mask=mask).logits)


@pytest.mark.parametrize("backbone", TINY)
def test_save_and_restore_give_identical_logits(backbone, tmp_path):
    model = perturb_(vlsurgery.compile(EVERY_SITE + PROMPT, fresh_model(backbone), seed=0))
    ids, mask, _ = batch(model)
    assert_save_and_restore(model, fresh_model(backbone), tmp_path / "run",
                            lambda m: m(ids, attention_mask=mask).logits)


@pytest.mark.parametrize("address", ["decoder.cross_attn", "encoder.ffn"])
def test_an_address_llama_lacks_lists_its_roles(address):
    with pytest.raises(ResolutionError, match=r"(?s)matches no site of tiny-llama.*expected an address of "
                                              r"decoder.input, decoder.self_attn, decoder.self_attn.q"):
        vlsurgery.count(f"{address}: adapter", "tiny-llama")


@pytest.mark.parametrize("backbone", TINY)
def test_merging_folds_the_linear_sites_into_a_plain_model(backbone):
    from vlsurgery.checkpoint import merge
    from vlsurgery.compiler import is_rewritten

    model = perturb_(vlsurgery.compile("decoder.self_attn.{q,v}: lora r=2\ndecoder.ffn.in: ia3",
                                       fresh_model(backbone), seed=0)).eval()
    ids, mask, _ = batch(model)
    with torch.no_grad():
        before = model(ids, attention_mask=mask).logits
        merge(model)
        after = model(ids, attention_mask=mask).logits
    assert not any(is_rewritten(m) for m in model.modules())  # the base model's prefix pass is undone too
    assert {n for n, _ in model.named_parameters()} == {n for n, _ in fresh_model(backbone).named_parameters()}
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)


def test_roles_naming_one_linear_give_one_site():
    """``in`` is gate and up: one site per linear whichever role reached it, overridable by either."""
    assert [(s.path, s.linear) for s in vlsurgery.plan("decoder[0].ffn.*: lora r=2", "tiny-llama").sites] == [
        ("decoder[0].ffn.gate", "mlp.gate_proj"), ("decoder[0].ffn.up", "mlp.up_proj"),
        ("decoder[0].ffn.down", "mlp.down_proj")]
    assert [s.path for s in vlsurgery.plan("decoder.ffn.in: ia3\ndecoder.ffn.gate: none", "tiny-llama").sites] == [
        "decoder[0].ffn.up", "decoder[1].ffn.up"]
