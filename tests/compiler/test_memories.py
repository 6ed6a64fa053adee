"""Whether a layer reads memory states (``encoder_hidden_states``) is a fact of the profile (its
stack has cross-attention), never guessed from a trial run: a decoder layer that fails on memories
must fail to compile, not be traced with its cross-attention folded away."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import vlsurgery
from compiler_cases import D, bart
from vlsurgery.compiler import cache_info, clear_cache, trace_layer
from vlsurgery.errors import CompileError


def test_a_decoder_layer_that_fails_on_memories_is_not_traced_without_them():
    # A cross-attention reading a 48-wide encoder: the 32-wide example memories do not fit it.  A
    # trial run fails for that reason, which once made the layer trace with memories None, so
    # its encoder was silently ignored (and validation, also without memories, passed).
    clear_cache()
    layer = bart().model.decoder.layers[0]
    layer.encoder_attn.k_proj = nn.Linear(48, D)
    layer.encoder_attn.v_proj = nn.Linear(48, D)
    with pytest.raises(CompileError, match="BartDecoderLayer.*mat1 and mat2 shapes"):
        trace_layer(layer, 1)
    assert not cache_info()  # nothing was traced in its place


def test_memories_false_folds_the_cross_attention_away_and_is_its_own_trace():
    clear_cache()
    layer = bart().model.decoder.layers[0]
    with_memories, without = trace_layer(layer, 1), trace_layer(layer, 1, memories=False)
    assert "encoder_attn" in with_memories.call_module_targets
    assert "encoder_attn" not in without.call_module_targets
    assert trace_layer(layer, 1) is with_memories  # cached apart


def test_compile_traces_the_decoder_with_cross_attention_from_the_profile():
    model = vlsurgery.compile("decoder.ffn: adapter r=4\n", bart(), seed=0)
    layer = model.model.decoder.layers[0]
    assert "encoder_attn" in type(layer)._vls_source
    hidden, memory = torch.randn(2, 3, D), torch.randn(2, 4, D)
    with torch.no_grad():
        assert not torch.equal(layer(hidden, None, memory)[0], layer(hidden, None, 2 * memory)[0])  # reads it
