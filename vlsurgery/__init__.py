"""vlsurgery: a declarative model-surgery language and compiler for parameter-efficient tuning.

A PET design is a spec, written in the ``.vls`` DSL or in YAML::

    backbone bart-base
    projector feat_dim=2048
    train encoder.layernorm, projector
    encoder.{self_attn,ffn}: adapter r=96 heads=4 granularity=large
    decoder.cross_attn.v: lite r=96

and the pipeline has one package per stage::

    vlsurgery.spec       text (DSL/YAML) -> typed immutable IR; printer; validation; extends
    vlsurgery.methods    the PET modules (VL-PET gates, adapters, LoRA, Compacter, ...) and their
                         hyperparameter schema and count formulas, in one registry
    vlsurgery.profiles   backbone families as data: role vocabulary, role -> dataflow points, presets
    vlsurgery.planning   spec + backbone -> Plan -> exact parameter counts (no torch)
    vlsurgery.compiler   torch.fx: trace layers, insert the site modules at their X/H points,
                         install by class change, prepend visual/prompt tokens, freeze
    vlsurgery.diff       semantic diff of two designs (sites, extras, parameter deltas)
    vlsurgery.checkpoint PET checkpoints (safetensors + the spec), the save_pretrained route, merging
    vlsurgery.data       VL data: a procedural VQA task, HDF5/JSON readers, a collator, metrics
    vlsurgery.training   training on the Hugging Face Trainer from YAML recipes, PET-only checkpoints
    vlsurgery.testing    hypothesis strategies and property assertions (needs hypothesis)
    vlsurgery.search     design spaces: every member counted exactly, filtered by a budget
    vlsurgery.draw       a design (or two, diffed) as a self-contained SVG/HTML picture
    vlsurgery.cli        the ``vlsurgery`` command (check, fmt, plan, count, search, diff, draw, compile, demo)

The public API::

    spec = vlsurgery.load("specs/paper/bart-base/vl-pet-large.vls")    # or parse(text)
    vlsurgery.count(spec).trainable_percent                           # 4.1611 on bart-base
    model = vlsurgery.compile(spec, model)                            # a Hugging Face model, in place
    d = vlsurgery.diff("specs/paper/bart-base/vl-pet-small.vls", spec)  # what changed, what it costs
    d.trainable_delta, print(d)                                        # 1761396; a table
    vlsurgery.save(model, "run/pet"); model = vlsurgery.restore("run/pet")   # what was trained, exactly
    plain = vlsurgery.merge(model)                                     # LoRA/IA3 folded: a plain HF model

Importing ``vlsurgery`` does not import torch; ``compile`` does, on first use.
"""

from vlsurgery.errors import (BackboneError, CompileError, ResolutionError, SpecError, SpecSyntaxError, UsageError,
                              VLSurgeryError)
from vlsurgery import diff  # a callable package: vlsurgery.diff(a, b)
from vlsurgery.checkpoint.errors import CheckpointError, MergeError
from vlsurgery.planning import count, plan
from vlsurgery.profiles import load_backbone
from vlsurgery.spec import Spec, dumps, load, load_space, parse, parse_space
from vlsurgery import draw, search  # callable packages: vlsurgery.search(space, ...), vlsurgery.draw(spec)


def compile(spec, model, *, seed=None):
    """Apply ``spec`` to ``model`` (a Hugging Face seq2seq model) in place and return it.

    The base is frozen except what the spec's ``train`` names; every added module trains.  On any
    error the model is left exactly as it was.  See :mod:`vlsurgery.compiler.compile`.  A model
    with ``save_pretrained`` also writes its PET checkpoint there, so that ``restore`` brings it
    back exactly (:mod:`vlsurgery.checkpoint.hf`).
    """
    from vlsurgery.checkpoint.hf import enable_save_pretrained
    from vlsurgery.compiler.compile import compile as _compile

    model = _compile(spec, model, seed=seed)
    return enable_save_pretrained(model) if hasattr(type(model), "save_pretrained") else model


def save(model, directory, spec=None):
    """Write the PET checkpoint of a compiled model: its trained tensors as safetensors, the
    canonical spec and its hash, the backbone's identity (see :mod:`vlsurgery.checkpoint`)."""
    from vlsurgery.checkpoint import save as _save

    return _save(model, directory, spec)


def restore(directory, backbone=None):
    """The model saved in ``directory`` (by ``save`` or ``save_pretrained``), restored exactly."""
    from vlsurgery.checkpoint import restore as _restore

    return _restore(directory, backbone)


def train(spec, data=None, backbone=None, output_dir="vlsurgery-run", recipe=None, **overrides):
    """Compile ``spec`` and train it with the Hugging Face Trainer from a YAML recipe (see
    :mod:`vlsurgery.training`); returns a TrainRun: ``.result`` (the Trainer's TrainOutput),
    ``.trainer.model``, ``.metrics``, ``.checkpoint``."""
    from vlsurgery.training import train as _train

    return _train(spec, data, backbone, output_dir, recipe, **overrides)


def merge(model, *, partial=False):
    """Fold LoRA, (IA)^3 and constant gates into the base weights: a plain Hugging Face model."""
    from vlsurgery.checkpoint import merge as _merge

    return _merge(model, partial=partial)


__all__ = ["BackboneError", "CheckpointError", "CompileError", "MergeError", "ResolutionError", "Spec", "SpecError",
           "SpecSyntaxError", "UsageError", "VLSurgeryError", "compile", "count", "diff", "dumps", "load",
           "load_backbone", "load_space", "merge", "parse", "parse_space", "plan", "restore", "save", "search",
           "draw", "train"]
