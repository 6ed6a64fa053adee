"""All or nothing: snapshot a model and restore it exactly when compilation fails.

:class:`Snapshot` records, for every module of the tree, its class, its ``__dict__`` (attribute
references, with the containers in it copied: ``_modules``, ``_parameters``, ``_buffers``, hook
dicts, ...), and for every parameter and buffer its ``requires_grad``, ``.grad`` reference and
version counter.  :meth:`Snapshot.restore` puts all of that back *in place* (the same module
objects, the same container objects, so hook handles stay valid).

Tensor values: compilation never writes into existing parameters, so by default values are not
copied; an in-place change is detected by the tensor's version counter and reported (as a note on
the exception) instead of silently kept.  ``values=True`` also keeps copies and restores them.

>>> with transaction(model):            # doctest: +SKIP
...     for layer, edit in edits: rewrite_layer(layer, ...)
... # on any exception the model is exactly as before, and the exception propagates
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn


def _copy_container(value):
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, (set, list)):
        return type(value)(value) if type(value) in (set, list) else None
    return None


class Snapshot:
    """The restorable state of a module tree (see the module docstring)."""

    def __init__(self, model: nn.Module, *, values: bool = False):
        self.model = model
        self.values = values
        self._modules: list[tuple[nn.Module, type, dict]] = []
        self._tensors: dict[int, tuple] = {}
        for mod in model.modules():
            state = {k: (v, _copy_container(v)) for k, v in mod.__dict__.items()}
            self._modules.append((mod, type(mod), state))
            for t in list(mod._parameters.values()) + list(mod._buffers.values()):
                if t is not None and id(t) not in self._tensors:
                    self._tensors[id(t)] = (t, t.requires_grad, t.grad if isinstance(t, nn.Parameter) else None,
                                            t._version, t.detach().clone() if values else None)

    def restore(self) -> list[str]:
        """Put the model back; returns problems that could not be undone (empty when exact)."""
        problems: list[str] = []
        for mod, cls, state in self._modules:
            if type(mod) is not cls:
                mod.__class__ = cls
            d = mod.__dict__
            for key in [k for k in d if k not in state]:
                del d[key]
            for key, (obj, content) in state.items():
                if content is not None:
                    if isinstance(obj, dict):
                        obj.clear()
                        obj.update(content)
                    elif isinstance(obj, set):
                        obj.clear()
                        obj.update(content)
                    elif isinstance(obj, list):
                        obj[:] = content
                d[key] = obj
        for t, requires_grad, grad, version, copy in self._tensors.values():
            if t.requires_grad != requires_grad:
                t.requires_grad_(requires_grad)
            if isinstance(t, nn.Parameter) and t.grad is not grad:
                t.grad = grad
            if t._version != version:
                if copy is not None:
                    with torch.no_grad():
                        t.copy_(copy)
                else:
                    problems.append(f"a tensor of shape {tuple(t.shape)} was modified in place and "
                                    f"cannot be restored (snapshot taken without values=True)")
        return problems

    def changed(self) -> list[str]:
        """What differs now from the snapshot (structure, classes, flags, versions); for tests."""
        out = []
        now = {id(m) for m in self.model.modules()}
        then = {id(m) for m, _, _ in self._modules}
        if now != then:
            out.append(f"module tree: {len(now - then)} added, {len(then - now)} removed")
        for mod, cls, state in self._modules:
            if type(mod) is not cls:
                out.append(f"class of a {cls.__name__} changed to {type(mod).__qualname__}")
            if set(mod.__dict__) != set(state):
                out.append(f"attributes of a {cls.__name__} changed: "
                           f"{sorted(set(mod.__dict__) ^ set(state))}")
            for key in ("_modules", "_parameters", "_buffers"):
                old = state[key][1]
                new = mod.__dict__.get(key, {})
                if list(old) != list(new) or any(old[k] is not new[k] for k in old):
                    out.append(f"{key} of a {cls.__name__} changed")
        for t, requires_grad, _, version, _ in self._tensors.values():
            if t.requires_grad != requires_grad or t._version != version:
                out.append(f"tensor {tuple(t.shape)}: requires_grad/version changed")
        return out


@contextmanager
def transaction(model: nn.Module, *, values: bool = False) -> Iterator[Snapshot]:
    """Run a block against ``model``; if it raises, restore the model exactly and re-raise."""
    snapshot = Snapshot(model, values=values)
    try:
        yield snapshot
    except BaseException as exc:
        problems = snapshot.restore()
        for problem in problems:
            exc.add_note(f"vlsurgery: while restoring the model: {problem}")
        raise
