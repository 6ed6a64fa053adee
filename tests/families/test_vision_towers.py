"""ViT vision towers end to end: tiny-clip-vision (class token, pre-LN) and tiny-siglip-vision (no class
token, attention-pooling head), both with sublayer sites in the pre-LN layers and projection sites.

What a user relies on: identity sites change nothing (``torch.equal`` on every output), the
predicted counts are the compiled model's, training lowers a loss, ``torch.compile`` runs the
compiled model with the same loss and gradients, gradient checkpointing gives the same gradients,
and a trained design survives ``state_dict`` and ``vlsurgery.save``/``restore`` exactly.  A vision
tower takes no tokens: no input sites, and a visual projector is refused.
"""

import pytest
import torch
from family_models import (assert_checkpointing_keeps_the_gradients, assert_compile_gives_the_eager_loss_and_gradients,
                           assert_compiles_as_one_graph, assert_counts_are_the_models, assert_save_and_restore,
                           assert_state_dict_round_trip, assert_training_reduces_the_loss, fresh_model,
                           make_identity_, perturb_, reference)

import vlsurgery
from vlsurgery.errors import ResolutionError
from vlsurgery.profiles.backbone import load_model

TOWERS = ("tiny-clip-vision", "tiny-siglip-vision")

# Every kind of site: sublayer adapters at three granularities, LoRA, lite and IA3 on projections,
# an adapter on a feed-forward projection (d -> d_ff), and trained layer norms and biases.
EVERY_SITE = """
vision.self_attn: adapter r=8 heads=4 granularity=matrix gate_r=4
vision.ffn: adapter r=8 granularity=token
vision[-1].ffn: adapter granularity=vector
vision.self_attn.{q,v}: lora r=2
vision.self_attn.k: lite r=8
vision.ffn.in: ia3
vision.ffn.out: adapter r=4 placement=parallel
train vision.layernorm, vision.self_attn.o.bias
"""


def compiled(tower, seed=0):
    return vlsurgery.compile(EVERY_SITE, fresh_model(tower), seed=seed)


def pixels(model, seed=1, batch=2):
    size = model.config.image_size
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def loss_of(model, px):
    """A regression loss on both outputs of the tower (every layer and the pooled output take part)."""
    out = model(pixel_values=px)
    target = torch.linspace(-1, 1, out.last_hidden_state.shape[-1])
    return (out.last_hidden_state - target).pow(2).mean() + (out.pooler_output - target).pow(2).mean()


@pytest.mark.parametrize("tower", TOWERS)
def test_identity_sites_give_the_original_outputs(tower):
    model = compiled(tower)
    # vision[-1].ffn is vision.ffn of the last layer: 7 sites per layer
    assert make_identity_(model) == len(vlsurgery.plan(EVERY_SITE, model).sites) == 2 * 7
    ref = reference(tower, model)
    px = pixels(model)
    with torch.no_grad():
        got = model(pixel_values=px, output_hidden_states=True)
        expected = ref(pixel_values=px, output_hidden_states=True)
    assert torch.equal(got.last_hidden_state, expected.last_hidden_state)
    assert torch.equal(got.pooler_output, expected.pooler_output)
    assert len(got.hidden_states) == model.config.num_hidden_layers + 1  # the rewritten layers are still seen
    assert all(torch.equal(a, b) for a, b in zip(got.hidden_states, expected.hidden_states))


@pytest.mark.parametrize("tower", TOWERS)
def test_predicted_counts_are_the_compiled_models(tower):
    predicted = vlsurgery.count(EVERY_SITE, tower)
    assert_counts_are_the_models(predicted, compiled(tower))
    norms = 4 + (2 if tower == "tiny-clip-vision" else 1)  # 2 per layer + pre_layrnorm (CLIP) + post_layernorm
    assert predicted.base_trainable == norms * 2 * 32 + 2 * 32  # weight and bias each; out_proj's bias x 2 layers


@pytest.mark.parametrize("tower", TOWERS)
def test_training_reduces_the_loss(tower):
    model = compiled(tower).train()
    px = pixels(model)
    assert_training_reduces_the_loss(model, lambda m: loss_of(m, px))


@pytest.mark.parametrize("tower", TOWERS)
def test_gradient_checkpointing_gives_the_same_gradients(tower):
    px = pixels(fresh_model(tower))
    assert_checkpointing_keeps_the_gradients(lambda: perturb_(compiled(tower)), lambda m: loss_of(m, px))


@pytest.mark.parametrize("tower", TOWERS)
def test_rewritten_layer_compiles_as_one_graph(tower):
    model = perturb_(compiled(tower)).eval()
    x = torch.randn(2, 5, model.config.hidden_size, generator=torch.Generator().manual_seed(0))
    assert_compiles_as_one_graph(model.encoder.layers[-1], x, attention_mask=None)


def test_torch_compile_gives_the_eager_loss_and_gradients():
    model = perturb_(compiled("tiny-clip-vision")).eval()
    px = pixels(model)
    assert_compile_gives_the_eager_loss_and_gradients(model, lambda m: loss_of(m, px))


@pytest.mark.parametrize("tower", TOWERS)
def test_state_dict_round_trip_is_strict_and_exact(tower):
    model = perturb_(compiled(tower))
    px = pixels(model)
    assert_state_dict_round_trip(model, compiled(tower, seed=1), lambda m: m(pixel_values=px).pooler_output)


@pytest.mark.parametrize("tower", TOWERS)
def test_save_and_restore_give_identical_outputs(tower, tmp_path):
    model = perturb_(compiled(tower))
    px = pixels(model)
    assert_save_and_restore(model, fresh_model(tower), tmp_path / "run",
                            lambda m: m(pixel_values=px).last_hidden_state)


@pytest.mark.parametrize("address", ["decoder.self_attn", "encoder.ffn", "decoder.cross_attn.v"])
def test_an_address_the_tower_lacks_lists_its_roles(address):
    with pytest.raises(ResolutionError, match=r"(?s)matches no site of tiny-clip-vision.*expected an address of "
                                              r"vision.self_attn, vision.self_attn.q"):
        vlsurgery.count(f"{address}: adapter", "tiny-clip-vision")


def test_a_tower_takes_no_prefix_tokens():
    with pytest.raises(ResolutionError, match="no stack that takes visual tokens"):
        vlsurgery.count("projector feat_dim=8\nvision.ffn: adapter", "tiny-clip-vision")
    with pytest.raises(ResolutionError, match="train projector: tiny-clip-vision has no projector"):
        vlsurgery.count("train projector", "tiny-clip-vision")
    with pytest.raises(ResolutionError, match="tiny-siglip-vision takes no prefix tokens"):
        vlsurgery.count("vision.input: prompt", "tiny-siglip-vision")


def test_bias_and_layernorm_targets_cover_the_towers_own_norms():
    """BitFit on a tower: every bias of its layers and of the norms around them (CLIP's pre_layrnorm
    and post_layernorm sit outside ``encoder``, yet belong to the stack)."""
    biases = vlsurgery.plan("train vision.bias", "tiny-clip-vision").train
    assert biases[0] == "pre_layrnorm.bias" and biases[-1] == "post_layernorm.bias" and len(biases) == 2 * 8 + 2
    norms = vlsurgery.plan("train vision.layernorm", "tiny-siglip-vision").train
    assert norms[-2:] == ("post_layernorm.weight", "post_layernorm.bias") and len(norms) == 2 * 4 + 2
    assert not any(n.startswith("head.") for n in norms)  # the pooling head's norm is the head's


def test_a_saved_tower_loads_as_the_tower_with_its_weights(tmp_path):
    """A local directory: the tower class itself loads it (AutoModel would not be told which class)."""
    model = fresh_model("tiny-siglip-vision", seed=3)
    model.save_pretrained(tmp_path)
    loaded, pretrained = load_model(str(tmp_path))
    assert pretrained and type(loaded) is type(model)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    assert vlsurgery.count("vision.ffn: adapter r=4", str(tmp_path)).base == sum(p.numel() for p in model.parameters())
