"""The limits prefix tokens put on a decoder-only model's input, refused with a vlsurgery UsageError
before transformers fails inside (compiler.causal_prefix): GPT-2's learned position table holds the
P prefix tokens too, a static cache must hold them; and what the pass must not disturb: GPT-2's
token_type_ids, and a training forward without transformers' deprecation warning."""

from unittest import mock

import pytest
import torch
from family_models import fresh_model
from transformers import StaticCache

import vlsurgery
from vlsurgery.errors import UsageError

PROMPT = "decoder.input: prompt length=8"


def tokens(model, length, batch_size=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, model.config.vocab_size, (batch_size, length), generator=g)


@pytest.fixture(scope="module")
def gpt2():
    return vlsurgery.compile(PROMPT, fresh_model("tiny-gpt2"))


@pytest.fixture(scope="module")
def llama():
    return vlsurgery.compile(PROMPT, fresh_model("tiny-llama"))


def test_gpt2_text_is_limited_to_its_positions_less_the_prefix(gpt2):
    limit = gpt2.config.n_positions
    assert gpt2(tokens(gpt2, limit - 8)).logits.shape[1] == limit - 8  # exactly fills the table
    with pytest.raises(UsageError, match=f"text is limited to n_positions - 8 = {limit - 8} tokens with this design"):
        gpt2(tokens(gpt2, limit))


def test_llama_rotary_positions_have_no_table_to_overflow(llama):
    length = llama.config.max_position_embeddings  # + 8 prefix tokens: past the config's number, still fine
    assert llama(tokens(llama, length)).logits.shape[1] == length


def test_a_static_cache_without_room_for_the_prefix_is_refused(llama):
    ids = tokens(llama, 5)
    with pytest.raises(UsageError, match="use a dynamic cache .* or a static cache 8 tokens larger"):
        llama.generate(ids, max_new_tokens=4, do_sample=False, cache_implementation="static")


def test_a_static_cache_with_room_for_the_prefix_generates_as_the_dynamic_one(llama):
    ids = tokens(llama, 5)
    want = llama.generate(ids, max_new_tokens=4, do_sample=False)
    cache = StaticCache(config=llama.config, max_cache_len=8 + 5 + 4)
    assert torch.equal(llama.generate(ids, max_new_tokens=4, do_sample=False, cache=cache), want)


def test_a_training_forward_gives_no_cache_deprecation_warning(llama):
    ids = tokens(llama, 6, batch_size=2)
    llama.train()
    try:
        with mock.patch("transformers.utils.generic.logger.warning_once") as warned:
            llama(ids, labels=ids, use_cache=False).loss.backward()
    finally:
        llama.eval()
    assert not [c for c in warned.call_args_list if "deprecated" in str(c)]


def test_gpt2_token_type_ids_cover_the_prefix_as_type_zero(gpt2):
    """GPT-2 embeds token types with its token embedding; with that row 0 zeroed, type 0 adds
    nothing, so all-zero types (the prefix's padded on) give the logits of no types at all."""
    import copy

    model = copy.deepcopy(gpt2)
    with torch.no_grad():
        model.get_input_embeddings().weight[0].zero_()
    ids = tokens(model, 6, batch_size=2)
    logits = model(ids, token_type_ids=torch.zeros_like(ids)).logits
    assert logits.shape == (2, 6, model.config.vocab_size)
    torch.testing.assert_close(logits, model(ids).logits)
    assert not torch.allclose(model(ids, token_type_ids=torch.ones_like(ids)).logits, logits)  # types are used
