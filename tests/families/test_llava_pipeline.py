"""LLaVA end to end on tiny-llava: a 3-layer CLIP vision tower (LLaVA reads the output of layer 1:
``vision_feature_layer=-2``), the model's own MLP projector, and a 2-layer Llama with grouped-query
attention.  Images go in as ``pixel_values`` through the model's own tower and projector.

What a user relies on: identity sites change nothing (``torch.equal`` logits and generated tokens),
the predicted counts are the compiled model's (``train projector`` trains the model's own
projector), ``generate()`` with the KV cache equals ``generate(use_cache=False)`` (greedy and beam,
with an image), training lowers the loss, gradient checkpointing gives the same gradients,
``torch.compile`` runs, and a trained design survives ``state_dict`` and ``save``/``restore``.
"""

import pytest
import torch

import vlsurgery
from vlsurgery.errors import ResolutionError
from vlsurgery.profiles.backbone import load_model

TINY = "tiny-llava"
# Sites in both stacks: gated adapters, LoRA, lite and IA3; the model's projector and the tower's norms train.
EVERY_SITE = """
vision.{self_attn,ffn}: adapter r=4 heads=2 granularity=large
vision.self_attn.{q,v}: lora r=2
decoder.self_attn: adapter r=8 granularity=token
decoder.ffn: adapter r=8 granularity=small
decoder.self_attn.v: lite r=8
decoder.self_attn.{q,k}: lora r=2
decoder.ffn.up: ia3
train projector, vision.layernorm
"""
SITES_PER_MODEL = 2 * 4 + 2 * 6  # vision: 2 sublayers + q, v per layer (2 layers read); decoder: 6 per layer


def fresh_model(seed=0):
    return load_model(TINY, seed=seed)[0].eval()


def batch(model, seed=1):
    """Two examples: text, the image's 16 placeholder tokens, text; the second left-padded by two."""
    config = model.config
    g = torch.Generator().manual_seed(seed)
    text = torch.randint(3, config.image_token_id, (2, 6), generator=g)
    image = torch.full((2, config.image_seq_length), config.image_token_id)
    ids = torch.cat([text[:, :3], image, text[:, 3:]], dim=1)
    ids[1, :2] = config.pad_token_id
    mask = torch.ones_like(ids)
    mask[1, :2] = 0
    labels = ids.masked_fill((mask == 0) | (ids == config.image_token_id), -100)
    size = config.vision_config.image_size
    pixels = torch.randn(2, 3, size, size, generator=g)
    return {"input_ids": ids, "attention_mask": mask, "pixel_values": pixels}, labels


def generate(model, inputs, **kwargs):
    # vocabulary 128 holds the image token: a generated one would be taken for an image placeholder
    with torch.no_grad():
        return model.generate(**inputs, max_new_tokens=5, do_sample=False,
                              suppress_tokens=[model.config.image_token_id], **kwargs)


def site_modules(model):
    return [m for name, m in model.named_modules() if name.rsplit(".", 2)[-2:-1] == ["pet"]]


def perturb_(model, seed=0, scale=0.3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * scale)
    return model


def compiled(seed=0, perturb=True):
    model = vlsurgery.compile(EVERY_SITE, fresh_model(), seed=seed)
    return (perturb_(model) if perturb else model).eval()


def test_identity_sites_give_the_original_logits_and_tokens():
    model = compiled(perturb=False)
    sites = site_modules(model)
    assert len(sites) == SITES_PER_MODEL
    for module in sites:
        module.make_identity_()
    ref = fresh_model()
    flags = dict(model.named_parameters())
    for name, p in ref.named_parameters():  # the attention kernel's choice depends on requires_grad
        p.requires_grad_(flags[name].requires_grad)
    inputs, labels = batch(model)
    with torch.no_grad():
        got, expected = model(**inputs, labels=labels), ref(**inputs, labels=labels)
    assert torch.equal(got.logits, expected.logits) and torch.equal(got.loss, expected.loss)
    for beams in (1, 3):
        assert torch.equal(generate(model, inputs, num_beams=beams), generate(ref, inputs, num_beams=beams))


def test_predicted_counts_are_the_compiled_models_and_the_projector_is_the_models_own():
    predicted = vlsurgery.count(EVERY_SITE, TINY)
    model = compiled(perturb=False)
    assert predicted.total == sum(p.numel() for p in model.parameters())
    assert predicted.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    projector = {n: p for n, p in model.named_parameters() if n.startswith("model.multi_modal_projector.")}
    assert projector and all(p.requires_grad for p in projector.values())
    assert predicted.by_stack["projector"] == sum(p.numel() for p in projector.values())
    assert predicted.projector == 0  # nothing added: no vlsurgery projector on LLaVA
    frozen = vlsurgery.count(EVERY_SITE.replace("projector, ", ""), TINY)
    assert predicted.trainable - frozen.trainable == predicted.by_stack["projector"]


@pytest.mark.parametrize("beams", [1, 3])
def test_generate_with_the_cache_equals_generate_without(beams):
    model = compiled()
    inputs, _ = batch(model)
    cached = generate(model, inputs, num_beams=beams)
    assert torch.equal(cached, generate(model, inputs, num_beams=beams, use_cache=False))
    assert cached.shape[1] == inputs["input_ids"].shape[1] + 5


def test_the_image_reaches_the_sites():
    model = compiled()
    inputs, _ = batch(model)
    other = dict(inputs, pixel_values=torch.randn_like(inputs["pixel_values"]))
    with torch.no_grad():
        assert not torch.allclose(model(**inputs).logits, model(**other).logits)


def test_layers_after_the_feature_layer_get_no_site_and_change_nothing():
    """LLaVA reads the tower's hidden state after layer 1 of 0..2: layer 2 is not addressable, and
    its weights do not change the logits (so a site there could never learn anything)."""
    plan = vlsurgery.plan(EVERY_SITE, TINY)
    assert {s.layer for s in plan.sites if s.stack == "vision"} == {0, 1}
    with pytest.raises(ResolutionError, match="layer 2 is out of range: vision of tiny-llava has 2 layers"):
        vlsurgery.count("vision[2].ffn: adapter", TINY)
    model = fresh_model()
    inputs, _ = batch(model)
    with torch.no_grad():
        before = model(**inputs).logits
        for p in model.model.vision_tower.encoder.layers[2].parameters():
            p.add_(1.0)
        assert torch.equal(model(**inputs).logits, before)


def test_training_reduces_the_loss():
    model = vlsurgery.compile(EVERY_SITE, fresh_model(), seed=0).train()
    inputs, labels = batch(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=1e-2)
    losses = []
    for _ in range(8):
        loss = model(**inputs, labels=labels).loss
        optimiser.zero_grad()
        loss.backward()
        assert all(p.grad is not None for p in trainable)  # every site, the projector and the norms learn
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05


def test_gradient_checkpointing_gives_the_same_gradients():
    grads = []
    for checkpointing in (False, True):
        model = compiled().train()
        if checkpointing:
            model.activation_checkpointing_enable()  # gradient_checkpointing_enable, renamed in transformers 5
        inputs, labels = batch(model)
        model(**inputs, labels=labels).loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.slow  # about 30 s: dynamo traces the tower, the projector and the language model
def test_torch_compile_gives_the_eager_loss_and_gradients():
    torch._dynamo.reset()
    model = compiled()
    inputs, labels = batch(model)
    results = []
    for call in (model, torch.compile(model, backend="aot_eager")):
        model.zero_grad(set_to_none=True)
        loss = call(**inputs, labels=labels).loss
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}))
    torch._dynamo.reset()
    (eager, eager_grads), (got, grads) = results
    torch.testing.assert_close(got, eager, rtol=1e-5, atol=1e-6)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, eager_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_state_dict_round_trip_is_strict_and_exact():
    model = compiled()
    again = vlsurgery.compile(EVERY_SITE, fresh_model(), seed=1).eval()
    again.load_state_dict(model.state_dict(), strict=True)
    inputs, _ = batch(model)
    with torch.no_grad():
        assert torch.equal(again(**inputs).logits, model(**inputs).logits)


def test_save_and_restore_give_identical_logits(tmp_path):
    model = compiled()
    vlsurgery.save(model, tmp_path / "run")
    restored = vlsurgery.restore(tmp_path / "run", backbone=fresh_model()).eval()
    inputs, _ = batch(model)
    with torch.no_grad():
        assert torch.equal(restored(**inputs).logits, model(**inputs).logits)


@pytest.mark.parametrize("address", ["encoder.ffn", "decoder.cross_attn"])
def test_an_address_llava_lacks_lists_its_roles(address):
    with pytest.raises(ResolutionError, match=r"(?s)matches no site of tiny-llava.*expected an address of "
                                              r"vision.self_attn, vision.self_attn.q"):
        vlsurgery.count(f"{address}: adapter", TINY)


def test_llava_takes_no_added_projector_or_prefix_tokens():
    with pytest.raises(ResolutionError, match=r"has its own multimodal projector \(model.multi_modal_projector\)"):
        vlsurgery.count("projector feat_dim=16\ntrain projector", TINY)
    with pytest.raises(ResolutionError, match="takes no prefix tokens"):
        vlsurgery.count("decoder.input: prompt length=4", TINY)


def test_train_targets_skip_what_llava_never_reads():
    """``vision.bias`` / ``vision.layernorm``: the layers read (not layer 2) and pre_layrnorm, not the
    tower's post_layernorm (only its pooled output, unused by LLaVA, reads it)."""
    biases = vlsurgery.plan("train vision.bias", TINY).train
    assert len(biases) == 2 * 8 + 1 and not any(".layers.2." in n or "post_layernorm" in n for n in biases)
    norms = vlsurgery.plan("train vision.layernorm", TINY).train
    assert norms[:2] == ("model.vision_tower.pre_layrnorm.weight", "model.vision_tower.pre_layrnorm.bias")
    assert len(norms) == 2 + 2 * 2 * 2
