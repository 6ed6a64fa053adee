"""The Hugging Face route: ``save_pretrained`` of a compiled model also writes its checkpoint.

Plain ``save_pretrained`` writes ``config.json`` and ``model.safetensors`` (every tensor, PET ones
included) but nothing of the spec, so ``from_pretrained`` gives the bare backbone and reports the
PET tensors as unexpected keys.  :func:`enable_save_pretrained` closes that gap with the compiler's
one class-change mechanism (:func:`vlsurgery.compiler.install.runtime_class`): the model's root gets
a runtime subclass of its own class whose ``forward`` is the original one, which carries the
canonical spec (``vlsurgery.checkpoint.marker``) and whose ``save_pretrained`` calls the
original, then writes ``vlsurgery.json`` and ``vlsurgery.safetensors`` next to it with
``weights: "here"``.  ``vlsurgery.restore(directory)`` then rebuilds the trained model from that
directory alone.

What stays true: the model is the same object; ``isinstance`` checks, the class name (and so
``config.architectures``), parameter names and hooks are unchanged; ``is_rewritten(model)`` is
True and :func:`~vlsurgery.compiler.install.original_class` gives the Hugging Face class;
``vlsurgery compile --show-code`` lists the root with the source below.  One runtime class exists
per (model class, spec).  When the compiler changed the root's class already (a decoder-only
model with a projector names the visual keywords in its ``forward``), this class is a layer on top
of that one (``runtime_class(..., over=True)``) and :func:`disable_save_pretrained` takes off only
this layer.  ``push_to_hub=True`` is refused (the upload would start before the
checkpoint files exist): save to a directory, then upload the directory.
"""

from __future__ import annotations

import textwrap

from vlsurgery.checkpoint.files import CheckpointError, sha256_text
from vlsurgery.checkpoint.marker import SPEC_ATTR
from vlsurgery.checkpoint.saving import resolve_spec, save
from vlsurgery.compiler.install import (generated_source, is_rewritten, original_class, previous_class, runtime_class,
                                        swap_class)
from vlsurgery.errors import UsageError

_SOURCE = """\
# forward: {name}'s own, unchanged
def save_pretrained(self, save_directory, *args, **kwargs):
    {name}.save_pretrained(self, save_directory, *args, **kwargs)  # config.json, model.safetensors
    vlsurgery.checkpoint.save(self, save_directory, weights="here")  # vlsurgery.json, vlsurgery.safetensors
# the spec it carries (sha256 {sha}):
{spec}"""


def _save_pretrained(self, save_directory, *args, **kwargs):
    """``save_pretrained`` of the original class, then the vlsurgery checkpoint into the same
    directory (so that ``vlsurgery.restore(save_directory)`` gives this model back exactly)."""
    if kwargs.get("push_to_hub"):
        raise UsageError("save_pretrained(push_to_hub=True) would upload before the vlsurgery checkpoint is "
                         "written: save to a directory first, then upload the whole directory")
    result = original_class(self).save_pretrained(self, save_directory, *args, **kwargs)
    main = args[0] if args else kwargs.get("is_main_process", True)
    if main:
        save(self, save_directory, weights="here")
    return result


def enable_save_pretrained(model, spec=None):
    """Make ``model.save_pretrained`` also write the vlsurgery checkpoint; returns ``model``.

    ``spec``: the spec ``model`` was compiled with, needed only when the model carries none
    (:func:`~vlsurgery.checkpoint.marker.spec_of`); given with one, both must be the same design.
    Calling it again with the same design does nothing; with another design it is refused.

    >>> model = vlsurgery.checkpoint.enable_save_pretrained(vlsurgery.compile(spec, model))  # doctest: +SKIP
    >>> model.save_pretrained("runs/vl-pet")      # doctest: +SKIP
    """
    text = resolve_spec(model, spec)
    current = type(model)
    if getattr(current, SPEC_ATTR, None) is not None:
        if getattr(current, SPEC_ATTR) == text:
            return model
        raise CheckpointError(f"cannot enable save_pretrained on this {current.__name__}: its class carries another "
                              "spec; enable it once, right after compiling")
    if not callable(getattr(current, "save_pretrained", None)):
        raise UsageError(f"a {current.__name__} has no save_pretrained: expected a Hugging Face model")
    source = _SOURCE.format(name=current.__name__, sha=sha256_text(text), spec=textwrap.indent(text, "#   ", lambda line: True))
    if is_rewritten(current):  # the compiler's own class of the root (the visual keywords of a decoder-only model)
        source = f"# on top of:\n{generated_source(current)}\n{source}"
    cls = runtime_class(current, source, current.forward, over=True)
    if cls.__dict__.get(SPEC_ATTR) != text:  # a new class (cached classes already have both)
        cls.save_pretrained = _save_pretrained
        setattr(cls, SPEC_ATTR, text)
    swap_class(model, cls)
    return model


def disable_save_pretrained(model):
    """Give the model's root its Hugging Face class back (what :func:`enable_save_pretrained` did,
    undone); the model then carries no spec.  Returns ``model``."""
    if getattr(type(model), SPEC_ATTR, None) is not None:
        swap_class(model, previous_class(model))  # only this layer: a compiler class below it stays
    return model
