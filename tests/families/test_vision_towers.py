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


def fresh_model(name, seed=0):
    return load_model(name, seed=seed)[0].eval()


def pixels(model, seed=1, batch=2):
    size = model.config.image_size
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def site_modules(model):
    return [m for name, m in model.named_modules() if name.rsplit(".", 2)[-2:-1] == ["pet"]]


def perturb_(model, seed=0, scale=0.3):
    """Move every trainable tensor, so that no site is an identity and every one shows in the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * scale)
    return model


def loss_of(model, px):
    """A regression loss on both outputs of the tower (every layer and the pooled output take part)."""
    out = model(pixel_values=px)
    target = torch.linspace(-1, 1, out.last_hidden_state.shape[-1])
    return (out.last_hidden_state - target).pow(2).mean() + (out.pooler_output - target).pow(2).mean()


@pytest.mark.parametrize("tower", TOWERS)
def test_identity_sites_give_the_original_outputs(tower):
    model = vlsurgery.compile(EVERY_SITE, fresh_model(tower), seed=0)
    sites = site_modules(model)
    assert len(sites) == len(vlsurgery.plan(EVERY_SITE, model).sites) == 2 * 7  # vision[-1].ffn is vision.ffn
    for module in sites:
        module.make_identity_()
    ref = fresh_model(tower)
    flags = dict(model.named_parameters())
    for name, p in ref.named_parameters():  # the attention kernel's choice depends on requires_grad
        p.requires_grad_(flags[name].requires_grad)
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
    model = vlsurgery.compile(EVERY_SITE, fresh_model(tower), seed=0)
    assert predicted.total == sum(p.numel() for p in model.parameters())
    assert predicted.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    norms = 4 + (2 if tower == "tiny-clip-vision" else 1)  # 2 per layer + pre_layrnorm (CLIP) + post_layernorm
    assert predicted.base_trainable == norms * 2 * 32 + 2 * 32  # weight and bias each; out_proj's bias x 2 layers


@pytest.mark.parametrize("tower", TOWERS)
def test_training_reduces_the_loss(tower):
    model = vlsurgery.compile(EVERY_SITE, fresh_model(tower), seed=0).train()
    px = pixels(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=1e-2)
    losses = []
    for _ in range(8):
        loss = loss_of(model, px)
        optimiser.zero_grad()
        loss.backward()
        assert all(p.grad is not None for p in trainable)  # every site is in the graph
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05


@pytest.mark.parametrize("tower", TOWERS)
def test_gradient_checkpointing_gives_the_same_gradients(tower):
    grads = []
    for checkpointing in (False, True):
        model = perturb_(vlsurgery.compile(EVERY_SITE, fresh_model(tower), seed=0)).train()
        if checkpointing:
            model.activation_checkpointing_enable()  # gradient_checkpointing_enable, renamed in transformers 5
        loss_of(model, pixels(model)).backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("tower", TOWERS)
def test_rewritten_layer_compiles_as_one_graph(tower):
    """fullgraph=True fails on any graph break inside the generated forward or the site modules."""
    torch._dynamo.reset()
    model = perturb_(vlsurgery.compile(EVERY_SITE, fresh_model(tower), seed=0)).eval()
    layer = model.encoder.layers[-1]
    x = torch.randn(2, 5, model.config.hidden_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = layer(x, attention_mask=None)
        got = torch.compile(layer, backend="aot_eager", fullgraph=True)(x, attention_mask=None)
    torch._dynamo.reset()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_torch_compile_gives_the_eager_loss_and_gradients():
    torch._dynamo.reset()
    model = perturb_(vlsurgery.compile(EVERY_SITE, fresh_model("tiny-clip-vision"), seed=0)).eval()
    px = pixels(model)
    results = []
    for call in (model, torch.compile(model, backend="aot_eager")):
        model.zero_grad(set_to_none=True)
        loss = loss_of(call, px)
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}))
    torch._dynamo.reset()
    (eager, eager_grads), (compiled, grads) = results
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-6)
    assert grads.keys() == eager_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, eager_grads[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("tower", TOWERS)
def test_state_dict_round_trip_is_strict_and_exact(tower):
    model = perturb_(vlsurgery.compile(EVERY_SITE, fresh_model(tower), seed=0)).eval()
    again = vlsurgery.compile(EVERY_SITE, fresh_model(tower), seed=1).eval()
    again.load_state_dict(model.state_dict(), strict=True)
    px = pixels(model)
    with torch.no_grad():
        assert torch.equal(again(pixel_values=px).pooler_output, model(pixel_values=px).pooler_output)


@pytest.mark.parametrize("tower", TOWERS)
def test_save_and_restore_give_identical_outputs(tower, tmp_path):
    model = perturb_(vlsurgery.compile(EVERY_SITE, fresh_model(tower), seed=0)).eval()
    vlsurgery.save(model, tmp_path / "run")
    restored = vlsurgery.restore(tmp_path / "run", backbone=fresh_model(tower)).eval()
    px = pixels(model)
    with torch.no_grad():
        assert torch.equal(restored(pixel_values=px).last_hidden_state, model(pixel_values=px).last_hidden_state)


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
