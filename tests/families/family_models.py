"""What the family tests share: tiny seeded backbones, a left-padded token batch, and the checks every
family runs on its compiled model (identity sites, exact counts, training, gradient checkpointing,
``torch.compile``, ``state_dict`` and ``save``/``restore``).

The families differ only in what they are fed (tokens for the decoders, pixels for the vision towers,
both for LLaVA), so each check takes the model and a ``loss_of(model)`` or ``outputs_of(model)``
callable and leaves the inputs to the test.
"""

import torch

import vlsurgery
from vlsurgery.profiles.backbone import load_model


def fresh_model(name: str, seed: int = 0):
    """The shipped preset ``name`` with random weights drawn from ``seed``, in eval mode."""
    return load_model(name, seed=seed)[0].eval()


def batch(model, seed: int = 1, batch_size: int = 2, length: int = 7):
    """input_ids and a left-padded attention_mask (the second example has two pads), as a causal
    LM is batched for generation; labels = input_ids (the loss ignores the pads)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, model.config.vocab_size, (batch_size, length), generator=g)
    mask = torch.ones(batch_size, length, dtype=torch.long)
    mask[1, :2] = 0
    pad = model.config.pad_token_id
    ids[1, :2] = 1 if pad is None else pad  # GPT-2 has no pad token: any id does, the mask hides it
    return ids, mask, ids.masked_fill(mask == 0, -100)


def perturb_(model, seed=0, scale=0.3):
    """Move every trainable tensor, so that no site is an identity and every one shows in the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * scale)
    return model


def site_modules(model):
    """Every site module vlsurgery put into the layers (``...layers.<i>.pet.<name>``)."""
    return [m for name, m in model.named_modules() if name.rsplit(".", 2)[-2:-1] == ["pet"]]


def make_identity_(model) -> int:
    """Set every site module of ``model`` to identity; return how many there are."""
    sites = site_modules(model)
    for module in sites:
        module.make_identity_()
    return len(sites)


def reference(name: str, compiled):
    """A fresh ``name`` whose parameters have the compiled model's requires_grad flags: PyTorch's
    attention kernel choice (and so the last bits of its result) depends on whether gradients are needed."""
    ref = fresh_model(name)
    flags = dict(compiled.named_parameters())
    for param_name, p in ref.named_parameters():
        p.requires_grad_(flags[param_name].requires_grad)
    return ref


def assert_counts_are_the_models(predicted, model):
    """``vlsurgery.count``'s total and trainable are exactly the compiled model's parameters."""
    assert predicted.total == sum(p.numel() for p in model.parameters())
    assert predicted.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)


def trainable_grads(model) -> dict:
    return {n: p.grad for n, p in model.named_parameters() if p.requires_grad}


def assert_same_gradients(got: dict, expected: dict, rtol: float, atol: float):
    assert got.keys() == expected.keys()
    for name, grad in expected.items():
        torch.testing.assert_close(got[name], grad, rtol=rtol, atol=atol, msg=name)


def assert_training_reduces_the_loss(model, loss_of, steps: int = 8, lr: float = 1e-2) -> list:
    """AdamW on the trainable parameters for ``steps`` steps: every one of them gets a gradient at every
    step (every site is in the graph), and the loss ends more than 0.05 below where it began."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=lr)
    losses = []
    for _ in range(steps):
        torch.manual_seed(0)  # the same dropout at every step: only the weights change the loss
        loss = loss_of(model)
        optimiser.zero_grad()
        loss.backward()
        assert all(p.grad is not None for p in trainable)
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05, losses
    return losses


def assert_checkpointing_keeps_the_gradients(build, loss_of):
    """Two models from ``build()``, one with activation checkpointing: the same gradients."""
    grads = []
    for checkpointing in (False, True):
        model = build().train()
        if checkpointing:
            model.activation_checkpointing_enable()  # gradient_checkpointing_enable, renamed in transformers 5
        torch.manual_seed(0)
        loss_of(model).backward()
        grads.append(trainable_grads(model))
    assert_same_gradients(grads[1], grads[0], rtol=1e-5, atol=1e-6)


def assert_compile_gives_the_eager_loss_and_gradients(model, loss_of) -> dict:
    """``torch.compile(model)`` gives the eager loss and gradients; returns dynamo's graph breaks
    (reason -> count) for the caller to judge."""
    from torch._dynamo.utils import counters

    def loss_and_grads(call):
        model.zero_grad(set_to_none=True)
        loss = loss_of(call)
        loss.backward()
        return loss.detach(), {n: g.clone() for n, g in trainable_grads(model).items()}

    eager_loss, eager_grads = loss_and_grads(model)
    torch._dynamo.reset()
    counters.clear()
    try:
        loss, grads = loss_and_grads(torch.compile(model, backend="aot_eager"))
        breaks = dict(counters["graph_break"])
    finally:
        torch._dynamo.reset()
    torch.testing.assert_close(loss, eager_loss, rtol=1e-5, atol=1e-6)
    assert_same_gradients(grads, eager_grads, rtol=1e-4, atol=1e-6)
    return breaks


def assert_compiles_as_one_graph(module, *args, **kwargs):
    """``fullgraph=True`` fails on any graph break inside the generated forward or the site modules;
    the compiled module computes what the eager one does."""
    torch._dynamo.reset()
    try:
        with torch.no_grad():
            expected = module(*args, **kwargs)
            got = torch.compile(module, backend="aot_eager", fullgraph=True)(*args, **kwargs)
    finally:
        torch._dynamo.reset()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def assert_state_dict_round_trip(model, again, outputs_of):
    """``again`` (the same design, other initial weights) differs from ``model`` until it loads
    ``model``'s state_dict (strictly: no key missing or left over); then its outputs are exactly the same."""
    model.eval(), again.eval()
    with torch.no_grad():
        expected = outputs_of(model)
        assert not torch.equal(outputs_of(again), expected)
        again.load_state_dict(model.state_dict(), strict=True)
        assert torch.equal(outputs_of(again), expected)


def assert_save_and_restore(model, backbone, directory, outputs_of):
    """``vlsurgery.save`` then ``restore`` onto a fresh ``backbone`` gives exactly the same outputs."""
    vlsurgery.save(model, directory)
    restored = vlsurgery.restore(directory, backbone=backbone).eval()
    with torch.no_grad():
        assert torch.equal(outputs_of(restored), outputs_of(model.eval()))
