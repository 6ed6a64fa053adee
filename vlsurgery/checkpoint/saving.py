"""What a checkpoint holds, and ``save(model, directory)``.

The tensors of a checkpoint (:func:`checkpoint_tensors`) are exactly what a fresh compile of the
same spec cannot reproduce from the backbone's own weights:

* every tensor vlsurgery added: the site modules under each layer's ``pet``, the prefix tokens
  under the encoder's ``vls_prefix`` (the visual projector, the prompt) and the model's store of
  shared tensors ``vls_shared``, trained or not (a frozen projector is still randomly initialised);
* the base parameters the spec's ``train`` names (layer norms, biases, ``all``).

A tensor that is the same object as a base tensor the spec does not train (the projector's
reference to the token embedding) is left out, and a tensor reachable under several names is
stored once, under its first ``state_dict`` name; restoring computes the same selection on the
target model, so both sides agree on the names.

The spec comes from the model when it carries one (:func:`vlsurgery.checkpoint.marker.spec_of`),
else from the ``spec`` argument; both given must be the same design.
"""

from __future__ import annotations

from pathlib import Path

from vlsurgery.checkpoint.files import CheckpointError, write_checkpoint
from vlsurgery.checkpoint.marker import spec_of
from vlsurgery.compiler.compile import SHARED_ATTR
from vlsurgery.compiler.install import PET_ATTR
from vlsurgery.compiler.prefix import PREFIX_ATTR
from vlsurgery.errors import UsageError

#: Set on a model whose base weights a partial merge changed: only save_pretrained can keep it.
BASE_MERGED_ATTR = "_vls_base_merged"
def backbone_sizes(config) -> dict:
    """The sizes that fix the shapes of a backbone's tensors, read from its profile (so every family
    names them alike, whatever its config calls them): the family, the width, heads and vocabulary,
    and each stack's layer count, feed-forward width and (a vision tower's) own width, as
    ``decoder.n_layers``."""
    from vlsurgery.profiles.backbone import profile_of

    profile = profile_of(config)
    sizes = {"family": profile.family, "d_model": profile.d_model, "attn_inner": profile.attn_inner,
             "n_heads": profile.n_heads, "vocab_size": profile.vocab_size}
    for stack in profile.stacks:
        sizes[f"{stack.name}.n_layers"] = stack.n_layers
        sizes[f"{stack.name}.d_ff"] = stack.d_ff
        if stack.d_model is not None:
            sizes[f"{stack.name}.d_model"] = stack.d_model
    return sizes


def added_prefixes(model) -> tuple[str, ...]:
    """The state_dict name prefixes of everything vlsurgery added to ``model``."""
    out = []
    for path, module in model.named_modules():
        for attr in (PET_ATTR, PREFIX_ATTR) + ((SHARED_ATTR,) if path == "" else ()):
            if module._modules.get(attr) is not None:
                out.append(f"{path}.{attr}." if path else f"{attr}.")
    return tuple(out)


def checkpoint_tensors(model, train: tuple[str, ...] | set[str]) -> dict:
    """name -> tensor of what a checkpoint of ``model`` holds (see the module docstring);
    ``train``: the base parameter names the spec trains (``Plan.train``)."""
    prefixes = added_prefixes(model)
    state = model.state_dict(keep_vars=True)
    added = {name for name in state if name.startswith(prefixes)}
    base_ids = {id(t) for name, t in state.items() if name not in added}
    trained, seen, out = set(train), set(), {}
    for name, tensor in state.items():
        wanted = (name in added and id(tensor) not in base_ids) or name in trained
        if wanted and id(tensor) not in seen:
            seen.add(id(tensor))
            out[name] = tensor
    return out


def backbone_record(model, weights: str | None = None) -> dict:
    """The backbone's identity as ``vlsurgery.json`` records it (see :mod:`.files`).

    ``weights``: ``"here"`` when the base weights are saved next to the checkpoint (save_pretrained);
    otherwise where ``config.name_or_path`` says they came from (a local directory or a hub name),
    or None when the model was built from a config and its base weights exist nowhere else.
    """
    from vlsurgery.profiles import load_backbone

    config = model.config
    name = getattr(config, "name_or_path", "") or None
    revision = getattr(config, "_commit_hash", None)
    if weights is None and name is not None:
        weights = "path" if Path(name).expanduser().is_dir() else "hub"
        if weights == "path":
            name = str(Path(name).expanduser().resolve())
    if weights == "here":
        name, revision = None, None
    return {"family": config.model_type, "describe": load_backbone(config).profile.describe(),
            "sizes": backbone_sizes(config), "weights": weights, "name": name,
            "revision": revision if weights == "hub" else None}


def resolve_spec(model, spec=None):
    """The model's design: the spec it carries, or ``spec``; both must agree when both exist."""
    from vlsurgery import diff
    from vlsurgery.planning import load_spec
    from vlsurgery.spec import dumps

    carried = spec_of(model)
    if spec is None and carried is None:
        raise UsageError("this model carries no spec (it has no vls_design mark): "
                         "pass the spec it was compiled with, save(model, directory, spec=...)")
    given = load_spec(spec) if spec is not None else None
    if given is not None and carried is not None and dumps(given) != carried:
        d = diff(carried, given, backbone=model.config)
        if not d.identical:
            raise CheckpointError("the spec given is not the design this model was compiled with:\n" + str(d))
    return dumps(given) if given is not None else carried


def _check_compiled(model, spec_text: str):
    """Refuse a model whose parameters are not what compiling ``spec_text`` gives (wrong spec)."""
    from vlsurgery.planning import count, plan

    p = plan(spec_text, model.config)
    predicted = count(p).total
    actual = sum(t.numel() for t in {id(t): t for t in model.parameters()}.values())
    if predicted != actual:
        raise CheckpointError(f"this model has {actual:,} parameters, but the spec predicts {predicted:,} once "
                              "compiled: the model was not compiled with this spec (or has been changed since)")
    return p


def save(model, directory, spec=None, *, weights: str | None = None) -> Path:
    """Write the checkpoint of a compiled ``model`` into ``directory`` and return its path.

    The directory gets ``vlsurgery.safetensors`` (the tensors of :func:`checkpoint_tensors`) and
    ``vlsurgery.json`` (the canonical spec, its sha256, the backbone's identity); other files in
    it are left alone.  ``spec``: required when the model carries none.  ``weights``: see
    :func:`backbone_record`.  Nothing is pickled.

    >>> vlsurgery.save(model, "runs/vl-pet")      # doctest: +SKIP
    """
    from torch import nn

    if not isinstance(model, nn.Module) or not hasattr(model, "config"):
        raise UsageError(f"save() takes a compiled Hugging Face model, got {type(model).__name__}")
    if model.__dict__.get(BASE_MERGED_ATTR) and weights != "here":
        raise CheckpointError("a partial merge changed this model's base weights, so a checkpoint of the PET tensors "
                              "alone would restore onto the wrong base: save it with model.save_pretrained(directory), "
                              "which keeps the merged base next to the checkpoint")
    spec_text = resolve_spec(model, spec)
    p = _check_compiled(model, spec_text)
    tensors = checkpoint_tensors(model, p.train)
    return write_checkpoint(directory, spec_text, backbone_record(model, weights), tensors)
