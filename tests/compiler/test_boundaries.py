"""The compiler's own shape: no method names, one class-change mechanism, one dtype rule, caches
owned by vlsurgery.caches, short modules that cite documents users have."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

import vlsurgery.compiler as compiler
from compiler_cases import Adapter, bart
from vlsurgery import caches
from vlsurgery.compiler import clear_cache, is_rewritten, original_class, rewrite_layer
from vlsurgery.compiler.install import runtime_class, swap_class
from vlsurgery.compiler.placement import dtype_device
from vlsurgery.errors import CompileError
from vlsurgery.methods.registry import REGISTRY

SOURCES = sorted(Path(compiler.__file__).parent.glob("*.py"))


def test_the_compiler_names_no_method():
    """What a method needs is declared in its registry entry, never special-cased by name."""
    quoted = re.compile(r"""["'](%s)["']""" % "|".join(map(re.escape, REGISTRY)))
    hits = [f"{path.name}:{n}: {line.strip()}" for path in SOURCES
            for n, line in enumerate(path.read_text().splitlines(), 1) if quoted.search(line)]
    assert hits == []


def test_one_predicate_reads_the_runtime_class_marker():
    users = [path.name for path in SOURCES if "_vls_original_class" in path.read_text()]
    assert users == ["install.py"]


def test_runtime_classes_are_cached_and_read_as_the_original():
    class Plain(nn.Module):
        """A plain module."""

        def forward(self, x):
            return x

    def double(self, x):
        return 2 * x

    cls = runtime_class(Plain, "def forward(self, x):\n    return 2 * x\n", double)
    assert runtime_class(Plain, "def forward(self, x):\n    return 2 * x\n", double) is cls
    assert (cls.__name__, cls.__qualname__, cls.__module__, cls.__doc__) == (
        Plain.__name__, Plain.__qualname__, Plain.__module__, Plain.__doc__)
    assert original_class(cls) is Plain and is_rewritten(cls) and not is_rewritten(Plain)
    generated = runtime_class(Plain, "def forward(self, x):\n    return x + 1\n")  # compiled from source
    module = swap_class(Plain(), generated)
    assert module(torch.ones(1)).item() == 2.0 and is_rewritten(module)
    with pytest.raises(CompileError, match="already rewritten"):
        swap_class(module, cls)  # a rewrite is never silently replaced by another
    assert type(swap_class(module, Plain)) is Plain
    with pytest.raises(CompileError):
        runtime_class(cls, "def forward(self, x):\n    return x\n", double)  # no runtime class of a runtime class


def test_dtype_device_rule():
    assert dtype_device(nn.Linear(2, 2).to(torch.bfloat16)) == (torch.bfloat16, torch.device("cpu"))
    assert dtype_device(nn.ReLU()) == (torch.float32, torch.device("cpu"))

    class IntFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.ids = nn.Parameter(torch.zeros(3, dtype=torch.long), requires_grad=False)
            self.w = nn.Parameter(torch.zeros(3, dtype=torch.float64))
            self.register_buffer("scale", torch.zeros(1, dtype=torch.float16))

    assert dtype_device(IntFirst())[0] == torch.float64  # the first *floating-point* parameter
    buffers_only = nn.Module()
    buffers_only.register_buffer("ids", torch.zeros(1, dtype=torch.long))
    assert dtype_device(buffers_only) == (torch.float32, torch.device("cpu"))
    buffers_only.register_buffer("table", torch.zeros(1, dtype=torch.float16))
    assert dtype_device(buffers_only)[0] == torch.float16  # then buffers


def test_compiler_caches_live_in_vlsurgery_caches_and_clear_together():
    import vlsurgery.compiler.compile as compile_module

    compile_module.leaf_policy(("*",))
    model = bart()
    rewrite_layer(model.model.encoder.layers[0], 1, [("ffn", "fc1:in", "fc2:out", Adapter())])
    sizes = caches.sizes()
    for name in ("compiler.traces", "compiler.classes", "compiler.leaf_policy"):
        assert sizes[name] > 0, name
    clear_cache()
    sizes = caches.sizes()
    assert all(sizes[name] == 0 for name in sizes if name.startswith("compiler."))
    assert compiler.cache_info() == []
    layer = model.model.encoder.layers[0]  # a model compiled before the clear keeps working
    out = layer(torch.randn(2, 3, 32), None)
    assert is_rewritten(layer) and (out[0] if isinstance(out, tuple) else out).shape == (2, 3, 32)
