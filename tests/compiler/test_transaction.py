"""Atomicity: a compile that fails anywhere leaves the model exactly as it was."""

from __future__ import annotations

import copy

import pytest
import torch

from compiler_cases import Adapter, bart, batch, every_site_edits, leaf_depth, t5
from vlsurgery.compiler import Insertion, LayerEdit, Snapshot, rewrite_model, transaction
from vlsurgery.errors import CompileError


def state(model):
    """Everything the atomicity promise covers, comparable with ==."""
    return {
        "modules": [(name, id(m), type(m)) for name, m in model.named_modules()],
        "params": [(name, id(p), p.requires_grad, p.detach().clone()) for name, p in model.named_parameters()],
        "buffers": [(name, id(b), b.detach().clone()) for name, b in model.named_buffers()],
        "dicts": [sorted(vars(m)) for m in model.modules()],
    }


def same(a, b) -> bool:
    if a.keys() != b.keys():
        return False
    for key in a:
        if len(a[key]) != len(b[key]):
            return False
        for x, y in zip(a[key], b[key]):
            for u, v in zip(x if isinstance(x, tuple) else (x,), y if isinstance(y, tuple) else (y,)):
                if isinstance(u, torch.Tensor):
                    if not torch.equal(u, v):
                        return False
                elif u != v:
                    return False
    return True


@pytest.mark.parametrize("make", [bart, t5])
def test_failure_at_the_last_site_leaves_the_model_unchanged(make):
    model = make()
    ref = copy.deepcopy(model)
    before = state(model)
    edits = every_site_edits(model, lambda name: Adapter(zero=False))
    last = list(edits)[-1]
    bad = Insertion("broken", "nowhere:in", "nowhere:out", Adapter())
    edits[last] = LayerEdit(edits[last].insertions + (bad,), edits[last].projections)
    with pytest.raises(CompileError, match=rf"{last}: pass 'insert_site' failed at site 'broken'"):
        rewrite_model(model, edits, leaf_depth(model))
    assert same(before, state(model))
    ids, mask, labels = batch(model)
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids, labels=labels).logits, ref(input_ids=ids, labels=labels).logits)


def test_failure_in_a_late_projection_restores_earlier_layers_and_flags():
    model = bart()
    before = state(model)
    edits = every_site_edits(model, lambda name: Adapter())
    last = list(edits)[-1]
    edits[last] = LayerEdit(edits[last].insertions, (("encoder_attn.nope", "v", Adapter()),))
    with pytest.raises(CompileError, match="rewrite_projection"):
        with transaction(model):
            for p in model.parameters():  # what compile does first: freeze the backbone
                p.requires_grad_(False)
            rewrite_model(model, edits, 1)
    assert same(before, state(model))
    assert all(p.requires_grad for p in model.parameters())


def test_snapshot_reports_in_place_writes_it_cannot_undo():
    model = bart()
    snap = Snapshot(model)
    with torch.no_grad():
        model.lm_head.weight.add_(1.0)
    assert snap.changed()
    assert any("modified in place" in p for p in snap.restore())
    exact = Snapshot(model, values=True)
    original = model.lm_head.weight.detach().clone()
    with torch.no_grad():
        model.lm_head.weight.mul_(2.0)
    assert exact.restore() == [] and torch.equal(model.lm_head.weight, original)


def test_success_is_applied_whole():
    model = t5()
    rewrite_model(model, every_site_edits(model, lambda name: Adapter()), 3)
    assert sum(".pet." in n for n, _ in model.named_parameters()) == 4 * (2 * 2 + 2 * 4)
