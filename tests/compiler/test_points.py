"""Dataflow points resolve to the right fx nodes, and errors list what exists."""

from __future__ import annotations

import operator

import pytest

from compiler_cases import bart, t5
from vlsurgery.compiler import describe_points, parse_point, resolve_point, trace_layer
from vlsurgery.errors import CompileError


def test_bart_points():
    graph = trace_layer(bart().model.encoder.layers[0], 1).copy_graph()
    x = resolve_point(graph, "self_attn:in")
    assert x.op == "placeholder" and x.target == "hidden_states"
    h = resolve_point(graph, "self_attn:out")
    assert h.target is operator.getitem and h.args[1] == 0 and h.args[0].target == "self_attn"
    assert resolve_point(graph, "fc1:in").target == "self_attn_layer_norm"
    assert resolve_point(graph, "fc2:out").target == "fc2"


def test_t5_points_see_the_unnormalised_input():
    graph = trace_layer(t5().decoder.block[0], 3).copy_graph()
    assert resolve_point(graph, "layer.0.layer_norm:in").target == "hidden_states"
    # the FFN's residual input is the output of the cross-attention residual add, not a norm
    x = resolve_point(graph, "layer.2.layer_norm:in")
    assert x.op == "call_function" and x.target is operator.add
    assert resolve_point(graph, "layer.1.EncDecAttention:out").target is operator.getitem
    # keyword inputs: the attention leaves get hidden states positionally, the Linear below is
    # not a leaf of the block graph
    assert "layer.1.EncDecAttention:in" in describe_points(graph)


def test_unknown_point_lists_targets_and_guesses():
    graph = trace_layer(bart().model.decoder.layers[0], 1).copy_graph()
    with pytest.raises(CompileError) as err:
        resolve_point(graph, "encoder_atn:out")
    text = str(err.value)
    assert "did you mean 'encoder_attn'" in text
    assert "modules called: self_attn, self_attn_layer_norm, encoder_attn" in text


@pytest.mark.parametrize("bad", ["fc1", "fc1:middle", ":in", "fc1:"])
def test_malformed_points(bad):
    with pytest.raises(CompileError, match="malformed dataflow point"):
        parse_point(bad)
