"""Rewritten models: identity sites give the original model exactly; everything around keeps working."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

from compiler_cases import (Adapter, MaskRecorder, bart, batch, every_site_edits, family, leaf_depth, stacks, t5)
from vlsurgery.compiler import (format_generated_code, generated_code, is_rewritten,
                                original_class, padding_mask, restore_layer, rewrite_layer, rewrite_model)
from vlsurgery.errors import CompileError


def identity_twin(model):
    twin = copy.deepcopy(model)
    rewrite_model(twin, every_site_edits(twin, lambda name: Adapter(zero=True)), leaf_depth(twin))
    return twin


def modified_twin(model, seed=1):
    twin = copy.deepcopy(model)
    torch.manual_seed(seed)
    rewrite_model(twin, every_site_edits(twin, lambda name: Adapter(zero=False, parallel=name.endswith("_v"))),
                  leaf_depth(twin))
    return twin


def test_identity_sites_give_the_original_logits_and_generation(backbone):
    model = backbone()
    twin = identity_twin(model)
    enc, dec, _ = stacks(twin)
    assert all(is_rewritten(layer) for layer in list(enc) + list(dec))
    ids, mask, labels = batch(model)
    with torch.no_grad():
        a = model(input_ids=ids, attention_mask=mask, labels=labels)
        b = twin(input_ids=ids, attention_mask=mask, labels=labels)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.loss, b.loss)
    for beams in (1, 3):
        kw = dict(attention_mask=mask, max_new_tokens=6, num_beams=beams, do_sample=False, use_cache=True)
        assert torch.equal(model.generate(ids, **kw), twin.generate(ids, **kw))


def test_cached_generation_equals_uncached_on_a_modified_model(backbone):
    twin = modified_twin(backbone())
    ids, mask, _ = batch(twin)
    kw = dict(attention_mask=mask, max_new_tokens=6, do_sample=False)
    assert torch.equal(twin.generate(ids, use_cache=True, **kw), twin.generate(ids, use_cache=False, **kw))
    with torch.no_grad():  # and the modification really changes the model
        base = backbone()
        assert not torch.equal(base(input_ids=ids, labels=ids[:, :4].contiguous()).logits, twin(input_ids=ids, labels=ids[:, :4].contiguous()).logits)


def test_train_mode_with_seed_equals_the_original():
    """Dropout in the generated code follows .train() and consumes the RNG like the original."""
    model = t5(dropout=0.2)
    twin = identity_twin(model)
    ids, mask, labels = batch(model)
    model.train(), twin.train()
    torch.manual_seed(5)
    a = model(input_ids=ids, attention_mask=mask, labels=labels).logits
    torch.manual_seed(5)
    b = twin(input_ids=ids, attention_mask=mask, labels=labels).logits
    assert torch.equal(a, b)
    torch.manual_seed(6)
    assert not torch.equal(a, twin(input_ids=ids, attention_mask=mask, labels=labels).logits)


def test_output_hidden_states_still_returns_every_layer(backbone):
    model = backbone()
    twin = identity_twin(model)
    ids, mask, labels = batch(model)
    with torch.no_grad():
        a = model(input_ids=ids, attention_mask=mask, labels=labels, output_hidden_states=True)
        b = twin(input_ids=ids, attention_mask=mask, labels=labels, output_hidden_states=True)
    for key in ("encoder_hidden_states", "decoder_hidden_states"):
        assert len(getattr(b, key)) == len(getattr(a, key)) == 3
        assert all(torch.equal(x, y) for x, y in zip(getattr(a, key), getattr(b, key)))


@pytest.mark.parametrize("make", [bart, t5])
def test_gradient_checkpointing(make):
    model = modified_twin(make(dropout=0.0))
    ids, mask, labels = batch(model)
    grads = []
    for checkpointing in (False, True):
        m = copy.deepcopy(model).train()
        if checkpointing:
            m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        calls = []
        site = stacks(m)[0][0].pet.ffn
        site.register_forward_pre_hook(lambda *a: calls.append(1))  # (a post-hook may be cut by early stop)
        m(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        assert len(calls) == (2 if checkpointing else 1)  # recomputed in backward
        grads.append({n: p.grad for n, p in m.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and any(".pet." in n for n in grads[0])
    if make is bart:
        assert all(torch.equal(grads[0][n], grads[1][n]) for n in grads[0])
    else:
        # T5 shares the position bias of block 0 with the later blocks, so checkpointing changes the
        # order in which its gradients accumulate: the *original* T5 differs at the 1e-7 level too.
        for n in grads[0]:
            torch.testing.assert_close(grads[0][n], grads[1][n], rtol=1e-5, atol=1e-6)


def test_state_dict_round_trip_into_a_freshly_rewritten_model(backbone):
    a = modified_twin(backbone(), seed=1)
    b = modified_twin(backbone(), seed=2)
    keys = a.state_dict().keys()
    assert any(".pet.cross_attn_v." in k for k in keys)
    v = "model.decoder.layers.0.encoder_attn.v_proj.weight" if family(a) == "bart" else \
        "decoder.block.0.layer.1.EncDecAttention.v.weight"
    assert v in keys  # the projection keeps its parameter names; its site is not stored twice
    assert not any("_vls" in k or "v_proj.pet" in k for k in keys)
    b.load_state_dict(a.state_dict(), strict=True)
    ids, mask, labels = batch(a)
    with torch.no_grad():
        assert torch.equal(a(input_ids=ids, attention_mask=mask, labels=labels).logits,
                           b(input_ids=ids, attention_mask=mask, labels=labels).logits)


def test_deepcopy_keeps_sites_wired_to_the_copy():
    a = modified_twin(bart())
    b = copy.deepcopy(a)
    layer = b.model.decoder.layers[1]
    assert layer.encoder_attn.v_proj._vls_sites[0] == (layer.pet.cross_attn_v, None)
    assert layer.pet.cross_attn_v is not a.model.decoder.layers[1].pet.cross_attn_v
    ids, mask, labels = batch(a)
    with torch.no_grad():
        assert torch.equal(a(input_ids=ids, labels=labels).logits, b(input_ids=ids, labels=labels).logits)


def test_identical_layers_share_one_class_and_code_is_shown():
    model = identity_twin(bart())
    enc = model.model.encoder.layers
    assert type(enc[0]) is type(enc[1]) and original_class(enc[0]).__name__ == "BartEncoderLayer"
    assert isinstance(enc[0], original_class(enc[0]))
    items = {item.class_name: item for item in generated_code(model)}
    assert items["BartEncoderLayer"].paths == ("model.encoder.layers.0", "model.encoder.layers.1")
    assert "self.pet.ffn(" in items["BartEncoderLayer"].source
    text = format_generated_code(model)
    assert "# BartDecoderLayer: model.decoder.layers.0, model.decoder.layers.1" in text
    assert "# Linear:" in text
    compile(items["BartDecoderLayer"].source, "<check>", "exec")  # readable *and* valid Python


def test_restore_layer_gives_back_the_original():
    model = bart()
    ref = copy.deepcopy(model)
    layer = model.model.decoder.layers[0]
    rewrite_layer(layer, 1, [("ffn", "fc1:in", "fc2:out", Adapter(zero=False))],
                  [("encoder_attn.v_proj", "v", Adapter(zero=False))])
    restore_layer(layer)
    assert type(layer).__name__ == "BartDecoderLayer" and not is_rewritten(layer.encoder_attn.v_proj)
    assert "pet" not in dict(layer.named_children())
    ids, mask, labels = batch(model)
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids, labels=labels).logits, ref(input_ids=ids, labels=labels).logits)


def test_sites_on_one_point_chain_in_order():
    layer = bart().model.encoder.layers[0]
    order = []

    class Tag(nn.Module):
        def __init__(self, tag):
            super().__init__()
            self.tag = tag

        def forward(self, x, h, mask=None):
            order.append(self.tag)
            return h

    rewrite_layer(layer, 1, [("a", "fc1:in", "fc2:out", Tag("a")), ("b", "fc1:in", "fc2:out", Tag("b"))])
    layer(torch.randn(1, 3, 32), None)
    assert order == ["a", "b"]


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_padding_mask_reaches_the_sites(impl):
    model = bart(attn_implementation=impl)
    rec = {name: MaskRecorder() for name in ("enc", "dec")}
    rewrite_layer(model.model.encoder.layers[0], 1, [("self_attn", "self_attn:in", "self_attn:out", rec["enc"])])
    rewrite_layer(model.model.decoder.layers[0], 1, [("ffn", "fc1:in", "fc2:out", rec["dec"])])
    ids, mask, labels = batch(model)
    dec_mask = torch.ones_like(labels)
    dec_mask[0, -1] = 0
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask, decoder_input_ids=labels, decoder_attention_mask=dec_mask)
    assert torch.equal(rec["enc"].masks[-1], mask.bool())
    assert torch.equal(rec["dec"].masks[-1], dec_mask.bool())


def test_padding_mask_rule():
    hidden = torch.zeros(2, 3, 4)
    assert padding_mask(None, hidden) is None
    keep = torch.tensor([[1, 1, 1], [1, 1, 0]])
    assert torch.equal(padding_mask(keep, hidden), keep.bool())  # 2-D: non-zero = real
    causal = torch.tril(torch.ones(3, 3, dtype=torch.bool))[None, None] & keep.bool()[:, None, None, :]
    assert torch.equal(padding_mask(causal, hidden), keep.bool())  # last query row
    additive = torch.where(causal, 0.0, torch.finfo(torch.float32).min)
    assert torch.equal(padding_mask(additive, hidden), keep.bool())
    with_cache = torch.ones(2, 1, 1, 5, dtype=torch.bool)  # one new token, four cached
    assert padding_mask(with_cache, hidden[:, :1]).shape == (2, 1)


def test_bad_sites_are_compile_errors_naming_the_pass_and_site():
    layer = bart().model.decoder.layers[0]
    with pytest.raises(CompileError, match=r"pass 'insert_site' failed at site 'ffn' \(fc1:in -> fc3:out\)"):
        rewrite_layer(layer, 1, [("ffn", "fc1:in", "fc3:out", Adapter())], label="decoder[0]")
    with pytest.raises(CompileError, match=r"X point 'fc2:out' is computed after H point 'self_attn:out'"):
        rewrite_layer(layer, 1, [("x", "fc2:out", "self_attn:out", Adapter())])
    with pytest.raises(CompileError, match=r"rewrite_projection.*did you mean 'encoder_attn.v_proj'"):
        rewrite_layer(layer, 1, projections=[("encoder_attn.v_prj", "v", Adapter())])
    with pytest.raises(CompileError, match="not a valid attribute name"):
        rewrite_layer(layer, 1, [("cross_attn.v", "fc1:in", "fc2:out", Adapter())])
    with pytest.raises(CompileError, match="used twice"):
        rewrite_layer(layer, 1, [("a", "fc1:in", "fc2:out", Adapter()), ("a", "fc1:in", "fc2:out", Adapter())])
    assert not is_rewritten(layer) and "pet" not in layer._modules


def test_torch_compile_runs_forward_and_backward_without_graph_breaks():
    import torch._dynamo as dynamo
    from torch._dynamo.utils import counters

    model = modified_twin(bart(dropout=0.0)).train()
    ids, mask, labels = batch(model)
    dynamo.reset()
    counters.clear()
    compiled = torch.compile(model, backend="aot_eager")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss = compiled(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    # No break anywhere (so none inside the generated layer code or the projection subclass).
    assert not counters["graph_break"], dict(counters["graph_break"])
    expected = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    torch.testing.assert_close(loss, expected)
    assert model.model.encoder.layers[0].pet.ffn.up.weight.grad is not None
    assert model.model.decoder.layers[0].pet.cross_attn_v.up.weight.grad is not None
    dynamo.reset()


def test_hooks_and_parameter_names_survive_the_rewrite():
    model = bart()
    layer = model.model.encoder.layers[1]
    names = [n for n, _ in model.named_parameters()]
    seen = []
    layer.register_forward_hook(lambda *a: seen.append("post"))
    layer.register_forward_pre_hook(lambda *a: seen.append("pre"))
    rewrite_model(model, every_site_edits(model, lambda name: Adapter()), 1)
    assert [n for n in (n for n, _ in model.named_parameters()) if ".pet." not in n] == names
    ids, mask, labels = batch(model)
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask, labels=labels)
    assert seen == ["pre", "post"]


def test_projection_only_then_sublayer_sites_on_one_layer():
    layer = t5().decoder.block[0]
    rewrite_layer(layer, 3, projections=[("layer.1.EncDecAttention.v", "cross_attn_v", Adapter(zero=False))])
    rewrite_layer(layer, 3, [("ffn", "layer.2.layer_norm:in", "layer.2.DenseReluDense:out", Adapter())])
    assert sorted(layer.pet) == ["cross_attn_v", "ffn"]
    assert layer.layer[1].EncDecAttention.v._vls_sites == ((layer.pet.cross_attn_v, None),)
    out = layer(torch.randn(2, 3, 32), None, None, torch.randn(2, 4, 32))
    assert out[0].shape == (2, 3, 32)


def test_t5_padding_mask_reaches_the_sites():
    model = t5()
    rec = {name: MaskRecorder() for name in ("enc", "dec")}
    rewrite_layer(model.encoder.block[1], 3, [("self_attn", "layer.0.layer_norm:in", "layer.0.SelfAttention:out",
                                                rec["enc"])])
    rewrite_layer(model.decoder.block[0], 3, [("ffn", "layer.2.layer_norm:in", "layer.2.DenseReluDense:out",
                                                rec["dec"])])
    ids, mask, labels = batch(model)
    dec_mask = torch.ones_like(labels)
    dec_mask[1, -2:] = 0
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask, decoder_input_ids=labels, decoder_attention_mask=dec_mask)
    assert torch.equal(rec["enc"].masks[-1], mask.bool())
    assert torch.equal(rec["dec"].masks[-1], dec_mask.bool())


def test_pickling_a_rewritten_model_fails_loudly():
    import io
    import pickle

    model = identity_twin(bart())
    with pytest.raises(pickle.PicklingError):
        torch.save(model, io.BytesIO())
