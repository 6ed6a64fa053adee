"""Generating with a compiled VL model (VL-PET-large with its visual projector, non-identity modules).

* the KV cache does not change the result (greedy, several forced steps);
* beam search runs, with the visual inputs expanded along the beams: the beams of each example in a
  batch are those of the example generated alone;
* the projector is really used: visual inputs change the scores;
* the encoder's hidden states are one per layer plus the embeddings, each covering prefix + text;
* padding stays padding: the prefix's mask is prepended on the left, so a padded text token has no
  influence, in the encoder or through the decoder's cross-attention.
"""

import pytest
import torch
from pipeline_models import TINY
from vl_models import vl_inputs, vl_model

NEW = 6
REGIONS = 3


@pytest.fixture(scope="module", params=TINY)
def compiled(request):
    model = vl_model(request.param, seed=11).eval()
    inputs = vl_inputs(model, regions=REGIONS)
    inputs.pop("labels")
    return model, inputs


def gen(model, **kw):
    with torch.no_grad():
        return model.generate(do_sample=False, max_new_tokens=NEW, min_new_tokens=NEW, **kw)


def test_kv_cache_does_not_change_greedy_output(compiled):
    model, inputs = compiled
    cached = gen(model, **inputs, use_cache=True)
    uncached = gen(model, **inputs, use_cache=False)
    assert cached.shape == (2, NEW + 1)  # decoder start token + NEW tokens
    assert torch.equal(cached, uncached)


def test_beam_search_expands_visual_inputs_per_example(compiled):
    model, inputs = compiled
    beams = gen(model, **inputs, num_beams=3, num_return_sequences=3)
    assert beams.shape == (2 * 3, NEW + 1)
    # Example 0 is unpadded: generated alone, it gets exactly its beams of the batched call (its
    # visual regions must have been repeated per beam, not tiled across the batch).
    alone = gen(model, **{k: v[:1] for k, v in inputs.items()}, num_beams=3, num_return_sequences=3)
    assert torch.equal(alone, beams[:3])


def test_visual_inputs_change_the_output(compiled):
    model, inputs = compiled
    text = {k: inputs[k] for k in ("input_ids", "attention_mask")}
    with_vis = model.generate(**inputs, do_sample=False, max_new_tokens=3, min_new_tokens=3,
                              output_scores=True, return_dict_in_generate=True)
    without = model.generate(**text, do_sample=False, max_new_tokens=3, min_new_tokens=3,
                             output_scores=True, return_dict_in_generate=True)
    assert not torch.allclose(with_vis.scores[0], without.scores[0])
    # and other regions give other scores
    other = dict(inputs, vis_feats=inputs["vis_feats"].flip(0))
    moved = model.generate(**other, do_sample=False, max_new_tokens=3, min_new_tokens=3,
                           output_scores=True, return_dict_in_generate=True)
    assert not torch.allclose(with_vis.scores[0], moved.scores[0])


def test_encoder_hidden_states_include_prefix(compiled):
    model, inputs = compiled
    ids = inputs["input_ids"]
    decoder_input_ids = torch.full((ids.shape[0], 2), model.config.decoder_start_token_id)
    with torch.no_grad():
        out = model(**inputs, decoder_input_ids=decoder_input_ids, output_hidden_states=True)
    n_layers = len(model.get_encoder().layers if hasattr(model.get_encoder(), "layers")
                   else model.get_encoder().block)
    length = REGIONS + ids.shape[1]
    assert len(out.encoder_hidden_states) == n_layers + 1
    assert all(h.shape == (ids.shape[0], length, model.config.d_model) for h in out.encoder_hidden_states)
    assert out.encoder_last_hidden_state.shape[1] == length
    assert len(out.decoder_hidden_states) == n_layers + 1  # tiny presets: as many decoder layers


def test_padded_text_tokens_have_no_influence(compiled):
    """Example 1's last two text tokens are padding: changing them changes none of its outputs."""
    model, inputs = compiled
    ids = inputs["input_ids"]
    decoder_input_ids = torch.full((ids.shape[0], 3), model.config.decoder_start_token_id)
    other = ids.clone()
    other[1, -2:] = (other[1, -2:] + 7) % model.config.vocab_size
    with torch.no_grad():
        a = model(**inputs, decoder_input_ids=decoder_input_ids)
        b = model(**dict(inputs, input_ids=other), decoder_input_ids=decoder_input_ids)
    real = inputs["attention_mask"][1].bool()
    enc_a, enc_b = a.encoder_last_hidden_state[1], b.encoder_last_hidden_state[1]
    assert torch.allclose(enc_a[:REGIONS + int(real.sum())], enc_b[:REGIONS + int(real.sum())], atol=1e-6)
    assert torch.allclose(a.logits[1], b.logits[1], atol=1e-6)
    # the control: changing a real token of example 1 does change its logits
    other[1, 0] = (other[1, 0] + 7) % model.config.vocab_size
    with torch.no_grad():
        c = model(**dict(inputs, input_ids=other), decoder_input_ids=decoder_input_ids)
    assert not torch.allclose(a.logits[1], c.logits[1], atol=1e-6)


@pytest.mark.parametrize("backbone", ["tiny-bart", "tiny-t5"])
def test_small_gate_and_prompt_ignore_padding(backbone):
    """VL-PET-small averages its gate over the *real* tokens: with visual and prompt tokens prepended,
    the padding mask the gate receives must still line up with the text (prefix = real tokens)."""
    from pipeline_models import fresh_model

    from vlsurgery.compiler.compile import compile
    from vlsurgery.resources import spec_library

    family = "bart-base" if backbone == "tiny-bart" else "t5-base"
    spec = spec_library() / f"paper/{family}/vl-pet-small.vls"
    # the design's text with its base inlined (spec text cannot `extends`), plus two prompt tokens
    model = compile(spec.read_text().replace('extends "vl-pet.vls"', (spec.parent / "vl-pet.vls").read_text())
                    + "\nencoder.input: prompt length=2", fresh_model(backbone), seed=3).eval()
    inputs = vl_inputs(model)
    inputs.pop("labels")
    decoder_input_ids = torch.full((2, 3), model.config.decoder_start_token_id)
    other = inputs["input_ids"].clone()
    other[1, -2:] = (other[1, -2:] + 7) % model.config.vocab_size
    with torch.no_grad():
        a = model(**inputs, decoder_input_ids=decoder_input_ids)
        b = model(**dict(inputs, input_ids=other), decoder_input_ids=decoder_input_ids)
    assert a.encoder_last_hidden_state.shape[1] == REGIONS + 2 + other.shape[1]
    assert torch.allclose(a.logits[1], b.logits[1], atol=1e-6)
    other[1, 0] = (other[1, 0] + 7) % model.config.vocab_size  # control: a real token does matter
    with torch.no_grad():
        c = model(**dict(inputs, input_ids=other), decoder_input_ids=decoder_input_ids)
    assert not torch.allclose(a.logits[1], c.logits[1], atol=1e-6)
