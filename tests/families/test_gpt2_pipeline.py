"""GPT-2 end to end on tiny-gpt2 (Conv1D projections, the fused c_attn, tied lm_head).

What a user relies on: identity sites change nothing (``torch.equal``, logits and generated tokens),
the predicted counts are the compiled model's, ``generate()`` with the KV cache equals
``generate(use_cache=False)`` (greedy and beam, left-padded batch), training lowers the loss,
``torch.compile`` runs a rewritten block as one graph and the whole model with the eager loss and
gradients, gradient checkpointing gives the same gradients, and a trained design survives
``state_dict`` and ``vlsurgery.save``/``restore`` exactly.
"""

import pytest
import torch
from family_models import (assert_checkpointing_keeps_the_gradients, assert_compile_gives_the_eager_loss_and_gradients,
                           assert_compiles_as_one_graph, assert_counts_are_the_models, assert_save_and_restore,
                           assert_state_dict_round_trip, assert_training_reduces_the_loss, batch, fresh_model,
                           make_identity_, perturb_, reference)

import vlsurgery

GPT2 = "tiny-gpt2"

# Every kind of site GPT-2 has: sublayer adapters at three granularities; LoRA on two column
# slices of one c_attn (q, v), lite on a third (k), IA3 on the whole fused qkv, on c_proj and on
# the feed-forward's c_fc; an adapter in parallel on the feed-forward's c_proj.
EVERY_SITE = """
decoder.self_attn: adapter r=8 heads=4 granularity=matrix gate_r=4
decoder.ffn: adapter r=8 granularity=token
decoder[-1].ffn: adapter granularity=vector
decoder.self_attn.{q,v}: lora r=2
decoder.self_attn.k: lite r=8
decoder[0].self_attn.qkv: ia3
decoder.self_attn.o: ia3
decoder.ffn.in: ia3
decoder.ffn.out: adapter r=4 placement=parallel
train decoder.layernorm
"""


def compiled(spec=EVERY_SITE, seed=0):
    return vlsurgery.compile(spec, fresh_model(GPT2), seed=seed)


def test_identity_sites_give_the_original_logits_and_tokens():
    model = compiled()
    assert make_identity_(model) == len(vlsurgery.plan(EVERY_SITE, model).sites)
    ref = reference(GPT2, model)
    ids, mask, labels = batch(model)
    for training in (False, True):
        model.train(training), ref.train(training)
        torch.manual_seed(3)
        got = model(ids, attention_mask=mask, labels=labels)
        torch.manual_seed(3)
        expected = ref(ids, attention_mask=mask, labels=labels)
        assert torch.equal(got.logits, expected.logits) and torch.equal(got.loss, expected.loss)
    model.eval(), ref.eval()
    for kwargs in ({}, {"num_beams": 3}):
        with torch.no_grad():
            assert torch.equal(model.generate(ids, attention_mask=mask, max_new_tokens=4, do_sample=False, **kwargs),
                               ref.generate(ids, attention_mask=mask, max_new_tokens=4, do_sample=False, **kwargs))


def test_predicted_counts_are_the_compiled_models():
    assert_counts_are_the_models(vlsurgery.count(EVERY_SITE, GPT2), compiled())


@pytest.mark.parametrize("beams", [1, 3])
def test_generate_with_the_cache_equals_generate_without(beams):
    model = perturb_(compiled()).eval()
    ids, mask, _ = batch(model)
    with torch.no_grad():
        cached = model.generate(ids, attention_mask=mask, max_new_tokens=6, do_sample=False, num_beams=beams)
        plain = model.generate(ids, attention_mask=mask, max_new_tokens=6, do_sample=False, num_beams=beams,
                               use_cache=False)
    assert torch.equal(cached, plain) and cached.shape[1] == ids.shape[1] + 6
    with torch.no_grad():
        base = fresh_model(GPT2).generate(ids, attention_mask=mask, max_new_tokens=6, do_sample=False, num_beams=beams)
    assert not torch.equal(cached, base)  # the sites are in the generation path


def test_training_reduces_the_loss_and_trains_every_site():
    model = compiled().train()
    ids, mask, labels = batch(model)
    assert_training_reduces_the_loss(model, lambda m: m(ids, attention_mask=mask, labels=labels).loss)
    frozen = dict(fresh_model(GPT2).named_parameters())
    for name, p in model.named_parameters():  # the base is frozen and unchanged, layer norms aside
        if name in frozen and not p.requires_grad:
            assert torch.equal(p, frozen[name]), name


def test_gradient_checkpointing_gives_the_same_gradients():
    ids, mask, labels = batch(fresh_model(GPT2))
    assert_checkpointing_keeps_the_gradients(lambda: perturb_(compiled()),
                                             lambda m: m(ids, attention_mask=mask, labels=labels).loss)


def test_a_rewritten_block_compiles_as_one_graph():
    """fullgraph: no graph break in the generated block forward, the column-slice sites on c_attn
    or the Conv1D sites."""
    spec = "decoder.self_attn: adapter r=8 heads=4 granularity=scalar\n" + "decoder.self_attn.{q,v}: lora r=2\n" \
           "decoder.ffn.in: ia3\n"
    model = perturb_(compiled(spec)).eval()
    x = torch.randn(2, 5, 32, generator=torch.Generator().manual_seed(0))
    assert_compiles_as_one_graph(model.transformer.h[0], x)


def test_torch_compile_of_the_whole_model_matches_eager():
    model = perturb_(compiled()).eval()
    ids, mask, labels = batch(model)
    breaks = assert_compile_gives_the_eager_loss_and_gradients(
        model, lambda m: m(ids, attention_mask=mask, labels=labels).loss)
    # transformers' own warning about the config's loss_type breaks the plain model's graph too
    breaks = {k: n for k, n in breaks.items() if "loss_type" not in k}
    assert not breaks, breaks


def test_state_dict_round_trip_is_strict_and_exact():
    model = perturb_(compiled())
    ids, mask, _ = batch(model)
    assert_state_dict_round_trip(model, compiled(seed=1), lambda m: m(ids, attention_mask=mask).logits)


def test_save_and_restore_give_identical_logits(tmp_path):
    model = perturb_(compiled())
    ids, mask, _ = batch(model)
    assert_save_and_restore(model, fresh_model(GPT2), tmp_path / "run", lambda m: m(ids, attention_mask=mask).logits)


@pytest.mark.parametrize("beams", [1, 3])
def test_prompt_tuning_counts_exactly_and_generates_the_same_with_and_without_the_cache(beams):
    """GPT-2 takes prompt tokens at its decoder's input (learned absolute positions: the prompt
    takes positions 0..3, the text follows)."""
    spec = "decoder.input: prompt length=4\ndecoder.self_attn.{q,v}: lora r=2"
    model = perturb_(compiled(spec)).eval()
    assert_counts_are_the_models(vlsurgery.count(spec, GPT2), model)
    ids, mask, labels = batch(model)
    with torch.no_grad():
        out = model(ids, attention_mask=mask, labels=labels)
        plain = fresh_model(GPT2)(ids, attention_mask=mask, labels=labels)
        assert out.logits.shape == plain.logits.shape and not torch.allclose(out.logits, plain.logits)
        options = dict(attention_mask=mask, max_new_tokens=5, num_beams=beams, do_sample=False, pad_token_id=1)
        cached = model.generate(ids, use_cache=True, **options)
        uncached = model.generate(ids, use_cache=False, **options)
    assert torch.equal(cached, uncached)
