"""GPT-2 end to end on tiny-gpt2 (Conv1D projections, the fused c_attn, tied lm_head).

What a user relies on: identity sites change nothing (``torch.equal``, logits and generated tokens),
the predicted counts are the compiled model's, ``generate()`` with the KV cache equals
``generate(use_cache=False)`` (greedy and beam, left-padded batch), training lowers the loss,
``torch.compile`` runs a rewritten block as one graph (and the whole model, slow), gradient checkpointing gives the same gradients, and a
trained design survives ``state_dict`` and ``vlsurgery.save``/``restore`` exactly.
"""

import pytest
import torch

import vlsurgery
from vlsurgery.profiles.backbone import load_model

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


def fresh_model(seed: int = 0):
    model, _ = load_model("tiny-gpt2", seed=seed)
    return model.eval()


def batch(model, seed: int = 1, batch_size: int = 2, length: int = 7):
    """input_ids with a left-padded attention_mask (the second example has two pads), as a causal LM
    is batched for generation; labels = input_ids, pads ignored."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, model.config.vocab_size, (batch_size, length), generator=g)
    mask = torch.ones(batch_size, length, dtype=torch.long)
    mask[1, :2] = 0
    ids[1, :2] = 1
    return ids, mask, ids.masked_fill(mask == 0, -100)


def perturb_(model, seed=0, scale=0.3):
    """Move every trainable tensor, so that no site is an identity and every one shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * scale)
    return model


def site_modules(model):
    return [m for name, m in model.named_modules() if name.rsplit(".", 2)[-2:-1] == ["pet"]]


def compiled(spec=EVERY_SITE, seed=0):
    return vlsurgery.compile(spec, fresh_model(), seed=seed)


def test_identity_sites_give_the_original_logits_and_tokens():
    model = compiled()
    sites = site_modules(model)
    assert len(sites) == len(vlsurgery.plan(EVERY_SITE, model).sites)
    for module in sites:
        module.make_identity_()
    ref = fresh_model()
    flags = dict(model.named_parameters())
    for name, p in ref.named_parameters():  # the attention kernel's choice depends on requires_grad
        p.requires_grad_(flags[name].requires_grad)
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
    predicted = vlsurgery.count(EVERY_SITE, "tiny-gpt2")
    model = compiled()
    assert predicted.total == sum(p.numel() for p in model.parameters())
    assert predicted.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)


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
        base = fresh_model().generate(ids, attention_mask=mask, max_new_tokens=6, do_sample=False, num_beams=beams)
    assert not torch.equal(cached, base)  # the sites are in the generation path


def test_training_reduces_the_loss_and_trains_every_site():
    model = compiled().train()
    ids, mask, labels = batch(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=1e-2)
    losses = []
    for _ in range(8):
        torch.manual_seed(0)
        loss = model(ids, attention_mask=mask, labels=labels).loss
        optimiser.zero_grad()
        loss.backward()
        assert all(p.grad is not None for p in trainable)
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05
    frozen = dict(fresh_model().named_parameters())
    for name, p in model.named_parameters():  # the base is frozen and unchanged, layer norms aside
        if name in frozen and not p.requires_grad:
            assert torch.equal(p, frozen[name]), name


def test_gradient_checkpointing_gives_the_same_gradients():
    grads = []
    for checkpointing in (False, True):
        model = perturb_(compiled()).train()
        if checkpointing:
            model.gradient_checkpointing_enable()
        ids, mask, labels = batch(model)
        torch.manual_seed(0)
        model(ids, attention_mask=mask, labels=labels).loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-5, atol=1e-6, msg=name)


def test_a_rewritten_block_compiles_as_one_graph():
    """fullgraph: no graph break in the generated block forward, the column-slice sites on c_attn
    or the Conv1D sites (a few seconds; the whole model is the slow test below)."""
    spec = "decoder.self_attn: adapter r=8 heads=4 granularity=scalar\n" + "decoder.self_attn.{q,v}: lora r=2\n" \
           "decoder.ffn.in: ia3\n"
    model = perturb_(compiled(spec)).eval()
    block = model.transformer.h[0]
    x = torch.randn(2, 5, 32, generator=torch.Generator().manual_seed(0))
    torch._dynamo.reset()
    try:
        with torch.no_grad():
            expected = block(x)
            got = torch.compile(block, backend="aot_eager", fullgraph=True)(x)
    finally:
        torch._dynamo.reset()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_torch_compile_of_the_whole_model_matches_eager():
    from torch._dynamo.utils import counters

    model = perturb_(compiled()).eval()
    ids, mask, labels = batch(model)

    def loss_and_grads(call):
        model.zero_grad(set_to_none=True)
        loss = call(ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    eager_loss, eager_grads = loss_and_grads(model)
    torch._dynamo.reset()
    counters.clear()
    try:
        loss, grads = loss_and_grads(torch.compile(model, backend="aot_eager"))
        # transformers' own warning about the config's loss_type breaks the plain model's graph too
        breaks = {k: n for k, n in counters["graph_break"].items() if "loss_type" not in k}
        assert not breaks, breaks
    finally:
        torch._dynamo.reset()
    torch.testing.assert_close(loss, eager_loss, rtol=1e-5, atol=1e-6)
    assert grads.keys() == eager_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, eager_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_state_dict_round_trip_is_strict_and_exact():
    model = perturb_(compiled()).eval()
    again = compiled(seed=1).eval()
    again.load_state_dict(model.state_dict(), strict=True)
    ids, mask, _ = batch(model)
    with torch.no_grad():
        assert torch.equal(again(ids, attention_mask=mask).logits, model(ids, attention_mask=mask).logits)


def test_save_and_restore_give_identical_logits(tmp_path):
    model = perturb_(compiled()).eval()
    vlsurgery.save(model, tmp_path / "run")
    restored = vlsurgery.restore(tmp_path / "run", backbone=fresh_model()).eval()
    ids, mask, _ = batch(model)
    with torch.no_grad():
        assert torch.equal(restored(ids, attention_mask=mask).logits, model(ids, attention_mask=mask).logits)


@pytest.mark.parametrize("beams", [1, 3])
def test_prompt_tuning_counts_exactly_and_generates_the_same_with_and_without_the_cache(beams):
    """GPT-2 takes prompt tokens at its decoder's input (learned absolute positions: the prompt
    takes positions 0..3, the text follows)."""
    spec = "decoder.input: prompt length=4\ndecoder.self_attn.{q,v}: lora r=2"
    predicted = vlsurgery.count(spec, "tiny-gpt2")
    model = perturb_(compiled(spec)).eval()
    assert predicted.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert predicted.total == sum(p.numel() for p in model.parameters())
    ids, mask, labels = batch(model)
    with torch.no_grad():
        out = model(ids, attention_mask=mask, labels=labels)
        plain = fresh_model()(ids, attention_mask=mask, labels=labels)
        assert out.logits.shape == plain.logits.shape and not torch.allclose(out.logits, plain.logits)
        options = dict(attention_mask=mask, max_new_tokens=5, num_beams=beams, do_sample=False, pad_token_id=1)
        cached = model.generate(ids, use_cache=True, **options)
        uncached = model.generate(ids, use_cache=False, **options)
    assert torch.equal(cached, uncached)
