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
from family_models import (assert_checkpointing_keeps_the_gradients, assert_compile_gives_the_eager_loss_and_gradients,
                           assert_counts_are_the_models, assert_save_and_restore, assert_state_dict_round_trip,
                           assert_training_reduces_the_loss, fresh_model, make_identity_, perturb_, reference)

import vlsurgery
from vlsurgery.errors import ResolutionError

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


def compiled(seed=0, perturb=True):
    model = vlsurgery.compile(EVERY_SITE, fresh_model(TINY), seed=seed)
    return (perturb_(model) if perturb else model).eval()


def test_identity_sites_give_the_original_logits_and_tokens():
    model = compiled(perturb=False)
    assert make_identity_(model) == SITES_PER_MODEL
    ref = reference(TINY, model)
    inputs, labels = batch(model)
    with torch.no_grad():
        got, expected = model(**inputs, labels=labels), ref(**inputs, labels=labels)
    assert torch.equal(got.logits, expected.logits) and torch.equal(got.loss, expected.loss)
    for beams in (1, 3):
        assert torch.equal(generate(model, inputs, num_beams=beams), generate(ref, inputs, num_beams=beams))


def test_predicted_counts_are_the_compiled_models_and_the_projector_is_the_models_own():
    predicted = vlsurgery.count(EVERY_SITE, TINY)
    model = compiled(perturb=False)
    assert_counts_are_the_models(predicted, model)
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
    model = fresh_model(TINY)
    inputs, _ = batch(model)
    with torch.no_grad():
        before = model(**inputs).logits
        for p in model.model.vision_tower.encoder.layers[2].parameters():
            p.add_(1.0)
        assert torch.equal(model(**inputs).logits, before)


def loss_of(inputs, labels):
    return lambda model: model(**inputs, labels=labels).loss


def test_training_reduces_the_loss():
    """Every site, the projector and the norms learn."""
    model = compiled(perturb=False).train()
    assert_training_reduces_the_loss(model, loss_of(*batch(model)))


def test_gradient_checkpointing_gives_the_same_gradients():
    assert_checkpointing_keeps_the_gradients(compiled, loss_of(*batch(fresh_model(TINY))))


@pytest.mark.slow  # about 30 s: dynamo traces the tower, the projector and the language model
def test_torch_compile_gives_the_eager_loss_and_gradients():
    model = compiled()
    assert_compile_gives_the_eager_loss_and_gradients(model, loss_of(*batch(model)))


def test_state_dict_round_trip_is_strict_and_exact():
    model = compiled()
    inputs, _ = batch(model)
    assert_state_dict_round_trip(model, compiled(seed=1, perturb=False), lambda m: m(**inputs).logits)


def test_save_and_restore_give_identical_logits(tmp_path):
    model = compiled()
    inputs, _ = batch(model)
    assert_save_and_restore(model, fresh_model(TINY), tmp_path / "run", lambda m: m(**inputs).logits)


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
