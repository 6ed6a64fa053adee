"""Saving, loading and copying compiled models, and gradient checkpointing.

What a user does with a trained compiled model: ``state_dict()`` it, later re-apply the same spec to a
fresh backbone and ``load_state_dict(strict=True)``; or ``save_pretrained`` it.  What is saved by
``save_pretrained``: ``config.json`` (the backbone's config, nothing of the spec), ``generation_config.json``
and ``model.safetensors`` holding the *whole* state dict, base weights under their original names
plus the PET tensors (``.pet.``, ``vls_prefix``, ``vls_shared``); tied duplicates are stored once.
``from_pretrained`` on that folder gives the plain backbone (it reports the PET tensors as unexpected
keys); compiling the same spec onto it and loading the file restores the trained model exactly.
"""

import copy

import pytest
import torch
from pipeline_models import TINY, fresh_model
from vl_models import VL_PET_LARGE, vl_inputs, vl_model

from vlsurgery.compiler.compile import compile

NEW_KEY_MARKERS = (".pet.", ".vls_prefix.", ".vls_shared.")
#: Compacter's shared rule lives in the model-level store ``vls_shared``: this spec has all three kinds.
WITH_SHARED = """
projector feat_dim=16
train encoder.layernorm, projector
encoder.{self_attn,ffn}: compacter n=2 granularity=token
decoder.cross_attn.v: lite r=8
"""


def perturb_(model, seed=0):
    """Move every trainable tensor, so that a state dict that loses any of them shows in the logits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return model


def logits(model, inputs):
    model.eval()
    with torch.no_grad():
        return model(**inputs).logits


@pytest.mark.parametrize("backbone", TINY)
def test_state_dict_keeps_base_names_and_adds_only_pet_keys(backbone):
    base_keys = set(fresh_model(backbone).state_dict())
    keys = set(vl_model(backbone).state_dict())
    assert base_keys <= keys
    new = keys - base_keys
    assert new and all(any(m in f".{k}" for m in NEW_KEY_MARKERS) for k in new), sorted(new)
    shared = set(compile(WITH_SHARED, fresh_model(backbone)).state_dict()) - base_keys
    assert any(k.startswith("vls_shared.") for k in shared), sorted(shared)
    assert all(any(m in f".{k}" for m in NEW_KEY_MARKERS) for k in shared), sorted(shared)


@pytest.mark.parametrize("spec", ["vl-pet-large", "compacter"])
@pytest.mark.parametrize("backbone", TINY)
def test_state_dict_round_trip_into_fresh_compile(backbone, spec):
    def make(base_seed, seed):
        if spec == "vl-pet-large":
            return vl_model(backbone, seed=seed, base_seed=base_seed)
        return compile(WITH_SHARED, fresh_model(backbone, base_seed), seed=seed)

    trained = perturb_(make(0, 1))
    inputs = vl_inputs(trained, regions=2)
    if spec != "vl-pet-large":
        inputs["vis_feats"] = inputs["vis_feats"][..., :16]
    # a different base and other PET weights: everything must come from the state dict
    target = make(5, 2)
    assert not torch.equal(logits(target, inputs), logits(trained, inputs))
    result = target.load_state_dict(trained.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(logits(target, inputs), logits(trained, inputs))
    # loading writes values, never replaces the flags: the base stays frozen
    assert ([n for n, p in target.named_parameters() if p.requires_grad]
            == [n for n, p in trained.named_parameters() if p.requires_grad])


@pytest.mark.parametrize("backbone", ["tiny-bart", "tiny-t5"])
def test_save_pretrained_then_recompile_restores_the_model(backbone, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForSeq2SeqLM

    trained = perturb_(vl_model(backbone, seed=1))
    inputs = vl_inputs(trained)
    trained.save_pretrained(tmp_path)
    assert {"config.json", "model.safetensors"} <= {p.name for p in tmp_path.iterdir()}
    saved = load_file(tmp_path / "model.safetensors")
    assert any(".pet." in k for k in saved) and any(".vls_prefix." in k for k in saved)

    base = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    base_state = base.state_dict()
    for name, value in trained.state_dict().items():  # the backbone part came back exactly
        if name in base_state:
            assert torch.equal(base_state[name], value), name
    restored = compile(VL_PET_LARGE[backbone], base, seed=7)
    result = restored.load_state_dict(saved, strict=False)
    assert not result.unexpected_keys
    # only tied aliases may be absent from the file: each is the same tensor as a saved key's
    params = dict(restored.named_parameters(remove_duplicate=False))
    saved_tensors = {id(params[k]) for k in saved if k in params}
    assert all(k in params and id(params[k]) in saved_tensors for k in result.missing_keys), result.missing_keys
    assert torch.equal(logits(restored, inputs), logits(trained, inputs))


@pytest.mark.parametrize("backbone", ["tiny-bart", "tiny-t5"])
def test_deepcopy_is_an_independent_equal_model(backbone):
    model = perturb_(vl_model(backbone, seed=1))
    inputs = vl_inputs(model)
    clone = copy.deepcopy(model)
    assert torch.equal(logits(clone, inputs), logits(model, inputs))
    # the projector's shared obj-order embedding is the clone's own token embedding
    assert clone.get_encoder().vls_prefix.projector.token_embedding is clone.get_input_embeddings()
    assert not set(map(id, clone.parameters())) & set(map(id, model.parameters()))
    before = logits(model, inputs)
    with torch.no_grad():
        for p in clone.parameters():
            p.zero_()
    assert torch.equal(logits(model, inputs), before)
    # the clone still trains like the original
    assert ([n for n, p in clone.named_parameters() if p.requires_grad]
            == [n for n, p in model.named_parameters() if p.requires_grad])


@pytest.mark.filterwarnings("ignore::FutureWarning")  # gradient_checkpointing_enable's rename notice
@pytest.mark.parametrize("backbone", TINY)
def test_gradient_checkpointing_gives_the_same_gradients(backbone):
    calls = []

    def grads(checkpointing: bool):
        model = vl_model(backbone, seed=1)
        if checkpointing:
            model.gradient_checkpointing_enable()
            for name, module in model.named_modules():  # count the checkpointed calls of rewritten layers
                if getattr(module, "gradient_checkpointing", False) and hasattr(module, "pet"):
                    inner = module._gradient_checkpointing_func
                    module._gradient_checkpointing_func = (
                        lambda *a, _inner=inner, _name=name, **k: calls.append(_name) or _inner(*a, **k))
        model.train()
        torch.manual_seed(0)  # dropout: the checkpointed recomputation must replay the same masks
        model(**vl_inputs(model)).loss.backward()
        return {n: p.grad for n, p in model.named_parameters() if p.requires_grad}

    plain, checkpointed = grads(False), grads(True)
    n_layers = 2 * len(fresh_model(backbone).get_encoder().get_submodule(
        "layers" if backbone == "tiny-bart" else "block"))
    assert len(set(calls)) == n_layers, calls  # every rewritten layer (encoder and decoder) ran checkpointed
    missing = [n for n, g in checkpointed.items() if g is None]
    assert not missing, missing
    for name, g in checkpointed.items():
        torch.testing.assert_close(g, plain[name], rtol=1e-5, atol=1e-7, msg=name)
