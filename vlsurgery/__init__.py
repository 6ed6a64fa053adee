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
    vlsurgery.testing    hypothesis strategies and property assertions (needs hypothesis)
    vlsurgery.cli        the ``vlsurgery`` command (check, fmt, plan, count, diff, compile, demo)

The public API::

    spec = vlsurgery.load("specs/paper/bart-base/vl-pet-large.vls")    # or parse(text)
    vlsurgery.count(spec).trainable_percent                           # 4.1611 on bart-base
    model = vlsurgery.compile(spec, model)                            # a Hugging Face model, in place
    d = vlsurgery.diff("specs/paper/bart-base/vl-pet-small.vls", spec)  # what changed, what it costs
    d.trainable_delta, print(d)                                        # 1761396; a table

Importing ``vlsurgery`` does not import torch; ``compile`` does, on first use.
"""

from vlsurgery.errors import (BackboneError, CompileError, ResolutionError, SpecError, SpecSyntaxError, UsageError,
                              VLSurgeryError)
from vlsurgery import diff  # a callable package: vlsurgery.diff(a, b)
from vlsurgery.planning import count, plan
from vlsurgery.profiles import load_backbone
from vlsurgery.spec import Spec, dumps, load, parse


def compile(spec, model, *, seed=None):
    """Apply ``spec`` to ``model`` (a Hugging Face seq2seq model) in place and return it.

    The base is frozen except what the spec's ``train`` names; every added module trains.  On any
    error the model is left exactly as it was.  See :mod:`vlsurgery.compiler.compile`.
    """
    from vlsurgery.compiler.compile import compile as _compile

    return _compile(spec, model, seed=seed)


__all__ = ["BackboneError", "CompileError", "ResolutionError", "Spec", "SpecError", "SpecSyntaxError", "UsageError",
           "VLSurgeryError", "compile", "count", "diff", "dumps", "load", "load_backbone", "parse", "plan"]
