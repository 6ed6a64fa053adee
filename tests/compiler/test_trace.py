"""The tracer: traced-but-unmodified layers are exactly the originals; failures are CompileErrors."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from compiler_cases import D, bart, stacks, t5
from vlsurgery.compiler import LeafPolicy, clear_cache, leaf_paths, trace_layer
from vlsurgery.compiler.codegen import compile_forward, generate_source
from vlsurgery.compiler.validation import example_inputs, validate_forward
from vlsurgery.errors import CompileError, UsageError

LAYERS = {
    "bart-encoder": lambda: bart().model.encoder.layers,
    "bart-decoder": lambda: bart().model.decoder.layers,
    "t5-encoder": lambda: t5().encoder.block,
    "t5-decoder": lambda: t5().decoder.block,
    "t5-gated-encoder": lambda: t5(gated=True).encoder.block,
    "t5-gated-decoder": lambda: t5(gated=True).decoder.block,
}


def _depth(layer) -> int:
    return 1 if type(layer).__name__.startswith("Bart") else 3


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_traced_layer_equals_original(kind):
    """Every layer of the stack, eval and train mode (fixed seed), with and without masks."""
    layers = LAYERS[kind]()
    for layer in layers:
        traced = trace_layer(layer, _depth(layer))
        fn = inspect.unwrap(type(layer).forward)
        forward = compile_forward(*generate_source(traced.copy_graph()), "test")
        validate_forward(layer, fn, forward, traced.signature, D, what=kind)  # raises on mismatch
        # and by hand, in train mode with dropout active:
        inputs = example_inputs(traced.signature, D, torch.float32, torch.device("cpu"), masks=True, seed=3)
        layer.train()
        outs = []
        for f in (fn, forward):
            torch.manual_seed(7)
            outs.append(f(layer, **inputs))
        layer.eval()
        first = lambda o: o[0] if isinstance(o, tuple) else o  # noqa: E731
        assert torch.equal(first(outs[0]), first(outs[1]))


def test_trace_is_cached_per_class_and_config():
    clear_cache()
    model = t5()
    enc, dec, _ = stacks(model)
    a, b = trace_layer(enc[0], 3), trace_layer(enc[1], 3)
    assert a is b  # block 0 (with relative bias) and block 1 share one graph
    c = trace_layer(dec[0], 3)
    assert c is not a  # is_decoder and the module tree differ
    gated = t5(gated=True)
    assert trace_layer(gated.encoder.block[0], 3) is not a  # a different DenseReluDense class


def test_training_is_a_graph_read():
    layer = bart().model.encoder.layers[0]
    source = trace_layer(layer, 1).source
    assert "training = self.training" in source
    assert "training = True" not in source and "training = False" not in source


def test_leaf_policies():
    layer = t5().decoder.block[0]
    assert list(leaf_paths(layer, 3))[:3] == ["layer.0.SelfAttention", "layer.0.layer_norm", "layer.0.dropout"]
    by_predicate = LeafPolicy(predicate=lambda name, mod: name.count(".") == 2)
    targets = trace_layer(layer, by_predicate).call_module_targets
    assert "layer.1.EncDecAttention" in targets and "layer.2.DenseReluDense" in targets
    with pytest.raises(UsageError):
        LeafPolicy.of("deep")


def test_kwargs_reach_the_leaf_calls():
    """The generated forward has a real **kwargs that is forwarded to the attention leaves."""
    model = bart()
    layer = model.model.encoder.layers[0]
    from vlsurgery.compiler import rewrite_layer
    from compiler_cases import Adapter
    rewrite_layer(layer, 1, [("ffn", "fc1:in", "fc2:out", Adapter())])
    seen = {}
    layer.self_attn.register_forward_pre_hook(lambda m, a, k: seen.update(k), with_kwargs=True)
    layer(torch.randn(2, 3, D), None, my_flag=123)
    assert seen.get("my_flag") == 123


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, hidden_states):
        if hidden_states.sum() > 0:
            return self.lin(hidden_states)
        return hidden_states


class Stateful(nn.Module):
    """Reads a Python counter that changes between calls: the trace bakes it, validation catches it."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.calls = 0

    def forward(self, hidden_states):
        self.calls += 1
        return self.lin(hidden_states) * self.calls


def test_untraceable_class_is_a_compile_error_naming_it():
    with pytest.raises(CompileError, match=r"DataDependent.*data-dependent control flow"):
        trace_layer(DataDependent(), 1)


def test_validation_rejects_a_wrong_trace():
    with pytest.raises(CompileError, match=r"validation of the trace of .*Stateful"):
        trace_layer(Stateful(), 1)


def test_fp16_bart_encoder_cannot_be_traced():
    """BART's fp16 clamp is data-dependent (isfinite(...).all()): a clear error, not a wrong graph."""
    layer = bart().model.encoder.layers[0].half()
    with pytest.raises(CompileError, match="BartEncoderLayer") as info:
        trace_layer(layer, 1)
    assert "bfloat16 or float32" in str(info.value)  # and what to do instead


def test_bf16_folds_the_dtype_branch():
    layer = bart().model.encoder.layers[0].to(torch.bfloat16)
    assert "isfinite" not in trace_layer(layer, 1).source
