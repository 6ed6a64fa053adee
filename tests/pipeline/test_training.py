"""Training a compiled VL-PET model: the loss goes down, gradients reach exactly the trainable
parameters, those are exactly what the spec names, and the frozen backbone never moves.

The design is the paper's VL-PET-large (docs/paper.md §4) on each tiny backbone, fed text and
visual regions through the projector; the optimiser is AdamW at the paper's lr 1e-3, given *all*
the model's parameters (as a careless user would), so a gradient leaking into a frozen tensor
would move it.
"""

import importlib.util

import pytest
import torch
from pipeline_models import TINY, fresh_model
from torch import nn
from vl_models import vl_inputs, vl_model

STEPS = 10
#: Eval-mode loss drop required after STEPS steps.  Small on purpose: a random tiny BART starts with
#: near-uniform logits and its loss falls slowly (4.875 -> 4.862); T5 falls from ~5.4 to ~4.6.
MIN_DROP = 0.003


def encoder_norm_params(model) -> set[str]:
    """Names of every parameter of a norm module under the encoder (BART: LayerNorm, including the
    embedding norm; T5: T5LayerNorm, including the final one), found on the *uncompiled* model."""
    out = set()
    encoder = model.get_encoder()
    prefix = next(name for name, m in model.named_modules() if m is encoder)
    for name, module in encoder.named_modules():
        if isinstance(module, nn.LayerNorm) or type(module).__name__ == "T5LayerNorm":
            out.update(f"{prefix}.{name}.{p}" for p, _ in module.named_parameters(recurse=False))
    return out


def eval_loss(model, inputs) -> float:
    model.eval()
    with torch.no_grad():
        return model(**inputs).loss.item()


@pytest.mark.parametrize("backbone", TINY)
def test_trainable_set_is_what_the_spec_says(backbone):
    base = fresh_model(backbone)
    base_names = {n for n, _ in base.named_parameters()}
    norms = encoder_norm_params(base)
    assert norms, "no encoder norms found: the reference set is empty"
    model = vl_model(backbone)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    added = {n for n, _ in model.named_parameters()} - base_names
    # Added: the site modules under `.pet.` and the projector under `vls_prefix`; nothing else.
    assert added and all(".pet." in n or ".vls_prefix.projector." in n for n in added), sorted(added)
    assert any(".vls_prefix.projector." in n for n in added)
    assert any(".pet.cross_attn_v." in n for n in added)
    assert trainable == added | norms


@pytest.mark.parametrize("backbone", TINY)
def test_adamw_steps_train_only_the_pet_parameters(backbone):
    model = vl_model(backbone)
    inputs = vl_inputs(model)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    before = eval_loss(model, inputs)
    torch.manual_seed(0)
    for step in range(STEPS):
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss = model(**inputs).loss
        loss.backward()
        if step == 0:
            for name, p in model.named_parameters():
                if p.requires_grad:
                    assert p.grad is not None, f"trainable {name} got no gradient"
                    assert torch.isfinite(p.grad).all(), name
                else:
                    assert p.grad is None, f"frozen {name} got a gradient"
        optimizer.step()
    after = eval_loss(model, inputs)

    assert after < before - MIN_DROP, (before, after)
    params = dict(model.named_parameters())
    for name, value in frozen.items():
        assert torch.equal(params[name], value), f"frozen {name} changed"
    moved = [n for n, value in trainable.items() if not torch.equal(params[n], value)]
    assert sorted(moved) == sorted(trainable), sorted(set(trainable) - set(moved))


def test_bart_buffers_are_untouched_by_training():
    """Buffers (final_logits_bias) are no parameters: neither trained nor replaced."""
    model = vl_model("tiny-bart")
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    inputs = vl_inputs(model)
    for _ in range(2):
        optimizer.zero_grad()
        model(**inputs).loss.backward()
        optimizer.step()
    assert buffers and all(torch.equal(b, buffers[n]) for n, b in model.named_buffers())


@pytest.mark.skipif(importlib.util.find_spec("accelerate") is None,
                    reason="transformers.Trainer needs accelerate, which is not installed")
def test_hf_trainer_smoke(tmp_path):
    from transformers import Trainer, TrainingArguments

    model = vl_model("tiny-bart")
    inputs = vl_inputs(model)
    rows = [{k: v[i % 2] for k, v in inputs.items()} for i in range(4)]
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=2,
                             learning_rate=1e-3, report_to="none", save_strategy="no", logging_strategy="no",
                             remove_unused_columns=False, use_cpu=True, dataloader_num_workers=0)
    result = Trainer(model=model, args=args, train_dataset=rows).train()
    assert result.global_step == 2
    params = dict(model.named_parameters())
    assert all(torch.equal(params[n], v) for n, v in frozen.items())
