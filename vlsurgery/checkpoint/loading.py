"""``restore(directory, backbone=None)``: a checkpoint back into a model, exactly, or not at all.

1. The checkpoint is read and verified first (:func:`~vlsurgery.checkpoint.files.read_checkpoint`:
   format, spec hash, tensor file size and sha256), before any model is touched.
2. The base model: ``backbone`` when given (a model, or a name/path/config that
   :func:`vlsurgery.profiles.backbone.load_model` loads); otherwise where the checkpoint says the
   base weights are (this directory for the ``save_pretrained`` route, a local path, or a hub name at
   the recorded revision).  Its sizes must be those the checkpoint was trained on.
3. A plain model gets the saved spec compiled onto it; a model already compiled must carry the same
   design, else the refusal shows ``vlsurgery diff`` of the two designs.
4. The tensors load strictly: the names :func:`~vlsurgery.checkpoint.saving.checkpoint_tensors`
   selects on the target must be exactly those in the file, with the same shapes.  Values are cast
   to the target's dtype and device.

Steps 3 and 4 run in one transaction: on any error the model given is exactly as it was (classes,
modules, flags, and the values of tensors that were written are copied back).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from vlsurgery.checkpoint.files import CheckpointError, read_checkpoint
from vlsurgery.checkpoint.hf import enable_save_pretrained
from vlsurgery.checkpoint.marker import spec_of
from vlsurgery.checkpoint.saving import added_prefixes, backbone_sizes, checkpoint_tensors
from vlsurgery.compiler.install import is_rewritten
from vlsurgery.compiler.transaction import transaction
from vlsurgery.errors import UsageError


def _listed(names, limit: int = 6) -> str:
    names = sorted(names)
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


@contextlib.contextmanager
def _quiet_transformers():
    """from_pretrained on a save_pretrained directory reports the PET tensors as unexpected keys;
    they are loaded right after, so that report is noise here."""
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)


def _base_model(ckpt, backbone):
    from torch import nn
    from transformers import AutoConfig

    from vlsurgery.profiles.backbone import auto_class, profile_of

    if isinstance(backbone, nn.Module):
        return backbone
    if backbone is not None:
        from vlsurgery.profiles.backbone import load_model

        model, pretrained = load_model(backbone)
        if not pretrained:
            raise CheckpointError(f"backbone {backbone!r} has no weights (a preset gets random ones): the checkpoint "
                                  "holds only the tensors it trained, so it needs the base it was trained on; pass "
                                  "that model, or the directory or hub name of its weights")
        return model
    record = ckpt.backbone
    weights = record.get("weights")
    if weights == "here":
        source, revision = str(ckpt.directory), None
    elif weights in ("path", "hub") and isinstance(record.get("name"), str):
        source, revision = record["name"], record.get("revision")
    else:
        raise CheckpointError(f"{ckpt.directory}: the model saved was built from a config ({record.get('describe')}), "
                              "so its base weights exist nowhere but in that model: pass the backbone it was trained "
                              "on, restore(directory, backbone=model), or save with save_pretrained")
    try:
        with _quiet_transformers():
            # the class the saved config's profile names: seq2seq (T5, BART) or causal (LLaMA, GPT-2)
            config = AutoConfig.from_pretrained(source, revision=revision)
            return auto_class(profile_of(config)).from_pretrained(source, revision=revision)
    except Exception as exc:  # transformers raises OSError, ValueError, ...: one clear message instead
        raise CheckpointError(f"cannot load the base weights the checkpoint names ({weights} {source!r}"
                              + (f" at revision {revision}" if revision else "")
                              + f"): {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}; "
                              "pass the backbone yourself: restore(directory, backbone=...)") from None


def _check_sizes(ckpt, model) -> None:
    record = ckpt.backbone
    values = model.config.to_dict() if hasattr(model, "config") else {}
    if record.get("family") != values.get("model_type"):
        raise CheckpointError(f"the checkpoint was trained on {record.get('describe')}; this backbone is a "
                              f"{values.get('model_type') or type(model).__name__} model: expected the same family")
    sizes = record.get("sizes") or {}
    # the profile's names (backbone_sizes); a checkpoint written before them recorded config fields
    here = {**values, **backbone_sizes(model.config)}
    wrong = [f"{k}: {v} in the checkpoint, {here.get(k)} here" for k, v in sizes.items() if here.get(k) != v]
    if wrong:
        raise CheckpointError(f"the checkpoint was trained on {record.get('describe')}, a backbone of other sizes: "
                              + "; ".join(wrong))


def _is_compiled(model) -> bool:
    return spec_of(model) is not None or bool(added_prefixes(model)) or any(is_rewritten(m) for m in model.modules())


def _check_design(ckpt, model) -> None:
    from vlsurgery import diff

    carried = spec_of(model)
    if carried is None or carried == ckpt.spec:
        return
    d = diff(ckpt.spec, carried, backbone=model.config)
    if not d.identical:
        raise CheckpointError("this model was compiled from another design than the checkpoint's "
                              "(a: the checkpoint, b: the model):\n" + str(d))


def load_tensors(model, tensors: dict, train) -> None:
    """Copy ``tensors`` into ``model``'s checkpoint tensors, strictly (names and shapes), all or none."""
    import torch

    expected = checkpoint_tensors(model, train)
    missing, unexpected = set(expected) - set(tensors), set(tensors) - set(expected)
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensor(s) the model needs are not in the checkpoint: {_listed(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} tensor(s) in the checkpoint have no place in the model: "
                        f"{_listed(unexpected)}")
    shapes = [f"{n}: {tuple(tensors[n].shape)} in the checkpoint, {tuple(t.shape)} in the model"
              for n, t in expected.items() if n in tensors and tensors[n].shape != t.shape]
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es): " + "; ".join(shapes[:6]))
    if problems:
        raise CheckpointError("the checkpoint does not fit this model: " + "\n  ".join(problems))
    with torch.no_grad():
        backup = {n: t.detach().clone() for n, t in expected.items()}
        try:
            for name, target in expected.items():
                target.copy_(tensors[name])
        except BaseException:
            for name, target in expected.items():
                target.copy_(backup[name])
            raise


def restore(directory, backbone=None):
    """The model saved in ``directory`` (by :func:`vlsurgery.save` or ``save_pretrained`` of a
    compiled model), trained tensors loaded; see the module docstring.

    >>> model = vlsurgery.restore("runs/vl-pet")                     # doctest: +SKIP
    >>> model = vlsurgery.restore("runs/vl-pet", backbone=fresh)     # doctest: +SKIP
    """
    from vlsurgery.compiler.compile import compile
    from vlsurgery.planning import plan

    if not isinstance(directory, (str, Path)):
        raise UsageError(f"restore() takes a directory path, got {type(directory).__name__}")
    ckpt = read_checkpoint(directory)
    model = _base_model(ckpt, backbone)
    _check_sizes(ckpt, model)
    train = plan(ckpt.spec, model.config).train
    if _is_compiled(model):
        _check_design(ckpt, model)
        load_tensors(model, ckpt.tensors, train)
        return model
    with transaction(model):
        compile(ckpt.spec, model)
        enable_save_pretrained(model, ckpt.spec)
        load_tensors(model, ckpt.tensors, train)
    return model
