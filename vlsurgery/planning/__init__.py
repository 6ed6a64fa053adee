"""The planning stage: a spec and a backbone become a :class:`Plan`, and a plan a :class:`Count`.

    >>> from vlsurgery.planning import plan, count
    >>> c = count("specs/paper/bart-base/vl-pet-large.vls")
    >>> c.trainable, c.total, round(c.trainable_percent, 2)
    (6052416, 145452864, 4.16)

``plan(spec, backbone=None) -> Plan`` resolves a spec against a backbone (None: the spec's own
``backbone``); ``count(spec, backbone=None) -> Count`` adds up the parameters of the model that
compiling the plan would give.  ``spec`` is a :class:`~vlsurgery.spec.ir.Spec`, a path to a spec
file (``extends`` merged), or spec text; ``backbone`` a preset name (``bart-base``, ``tiny-t5``...),
a hub name, a local model directory, a ``PretrainedConfig`` or a model instance.

Modules: ``slots`` (every place a method can go on a backbone), ``resolve`` (the override rule,
statement by statement, and the entry point), ``train`` (``train`` targets -> base parameter
names), ``problems`` (errors collected and folded over sites), ``model`` (:class:`Plan`,
:class:`PlannedSite`) and ``counting`` (:class:`Count`).  Planning never imports torch.
"""

from __future__ import annotations

import os
from pathlib import Path

from vlsurgery.errors import UsageError
from vlsurgery.planning.counting import Count, SiteCount, count_plan
from vlsurgery.planning.model import Plan, PlannedSite


def names_a_file(spec) -> bool:
    """Whether ``spec`` names a spec file (a path, ``lib:NAME``, a one-line string ending in
    ``.vls``/``.yaml``/``.yml`` or naming an existing file) rather than being spec text; every
    entry point that takes either (count, plan, search) decides with this one rule."""
    return isinstance(spec, os.PathLike) or (isinstance(spec, str) and bool(spec.strip()) and "\n" not in spec and (
        spec.startswith("lib:") or Path(spec).suffix in (".vls", ".yaml", ".yml") or _exists(spec)))


def _exists(path: str) -> bool:
    try:
        return Path(path).exists()
    except (OSError, ValueError):  # a name too long for the file system, a NUL: text, not a path
        return False


def load_spec(spec):
    """A Spec from a Spec, a path or a library name ``lib:NAME`` (``extends`` merged), or spec text."""
    from vlsurgery.spec import Spec, load, parse

    if isinstance(spec, Spec):
        return spec
    if names_a_file(spec):
        return load(spec)
    if isinstance(spec, (str, bytes)):
        parsed = parse(spec)
        if parsed.extends is not None:
            raise UsageError("spec text with `extends` must be loaded from a file (its base is found relative "
                             "to it): pass the path instead")
        return parsed
    raise UsageError(f"expected a Spec, a path or spec text, got {type(spec).__name__}")


def plan(spec, backbone=None) -> Plan:
    """Resolve ``spec`` against ``backbone`` (None: the spec's own) into a :class:`Plan`."""
    from vlsurgery.planning.resolve import resolve

    return resolve(load_spec(spec), backbone)


def count(spec, backbone=None) -> Count:
    """Exact trainable and total parameters of the compiled model (docs/paper.md §6)."""
    if isinstance(spec, Plan):
        return count_plan(spec)
    return count_plan(plan(spec, backbone))


__all__ = ["Count", "Plan", "PlannedSite", "SiteCount", "count", "count_plan", "load_spec", "names_a_file", "plan"]
