"""With every inserted module set to identity, the compiled model is the original model, exactly.

Compared with ``torch.equal``: logits in eval mode and in train mode (same seed for dropout), and
generated tokens (greedy and beam search, with the KV cache).  The reference gets the same
requires_grad flags as the compiled model's base, because PyTorch's attention kernel choice (and
so the last bits of its result) depends on whether gradients are needed.
"""

import pytest
import torch
from pipeline_models import TINY, batch, fresh_model

from vlsurgery.compiler.compile import compile

# Every method with an identity setting, at every kind of site, in both stacks.
EVERY_SITE = """
encoder.{self_attn,ffn}: adapter r=8 heads=4 granularity=scalar
encoder.self_attn.{q,k}: lora r=2
encoder.ffn.out: adapter granularity=vector placement=parallel
decoder.{self_attn,cross_attn}: compacter n=2 granularity=token
decoder.ffn: adapter granularity=matrix gate_r=4
decoder.cross_attn.v: lite r=8
decoder.self_attn.o: ia3
train encoder.layernorm
"""


def identity_model(backbone: str):
    model = compile(EVERY_SITE, fresh_model(backbone))
    inserted = [m for name, m in model.named_modules() if name.endswith(tuple(".pet." + n for n in
                                                                                  _site_names(model)))]
    assert inserted, "no site modules found"
    for module in inserted:
        module.make_identity_()
    return model


def _site_names(model):
    return {name.split(".pet.")[1].split(".")[0] for name, _ in model.named_modules() if ".pet." in name}


def reference(backbone: str, compiled):
    ref = fresh_model(backbone)
    flags = dict(compiled.named_parameters())
    for name, p in ref.named_parameters():
        p.requires_grad_(flags[name].requires_grad)
    return ref


@pytest.mark.parametrize("backbone", TINY)
def test_identity_modules_give_original_logits(backbone):
    model = identity_model(backbone)
    ref = reference(backbone, model)
    ids, mask, labels = batch(model)
    for training in (False, True):
        ref.train(training), model.train(training)
        torch.manual_seed(3)
        expected = ref(input_ids=ids, attention_mask=mask, labels=labels)
        torch.manual_seed(3)
        got = model(input_ids=ids, attention_mask=mask, labels=labels)
        assert torch.equal(expected.logits, got.logits), f"training={training}"
        assert torch.equal(expected.loss, got.loss)


@pytest.mark.parametrize("backbone", TINY)
def test_identity_modules_generate_original_tokens(backbone):
    model = identity_model(backbone)
    ref = reference(backbone, model)
    ids, mask, _ = batch(model)
    with torch.no_grad():
        for beams in (1, 3):
            kw = dict(input_ids=ids, attention_mask=mask, max_new_tokens=6, num_beams=beams, do_sample=False,
                      min_new_tokens=6)
            assert torch.equal(ref.generate(**kw), model.generate(**kw)), f"num_beams={beams}"


def test_sites_are_really_there():
    model = identity_model("tiny-bart")
    names = _site_names(model)
    assert {"self_attn", "ffn", "cross_attn", "cross_attn_v", "self_attn_q", "self_attn_k", "ffn_out",
            "self_attn_o"} <= names
