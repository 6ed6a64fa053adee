"""Semantic diff of two PET designs: what changed, and what it costs.

    >>> d = diff("specs/paper/bart-base/vl-pet-small.vls", "specs/paper/bart-base/vl-pet-large.vls")
    >>> d.identical, d.trainable_delta
    (False, 1761396)
    >>> print(d.site_changes[0].where, "|", d.site_changes[0].summary)
    encoder[0:6].{self_attn,ffn} | init_gate_down: default -> backbone; gate: scalar(pool=all) -> matrix(r=96)

Both designs are resolved (each on its own backbone, or both on ``backbone=``) and compared on
their plans: sites added, removed and changed (field by field: ``heads: 1 -> 4``, the gate fields
folded into ``gate: none -> matrix(r=96)``), grouped so that one change on many layers, sublayers
or stacks is one row; then the rest of the design (``backbone``, ``projector``, ``train`` as
base parameter names, Compacter's ``shared`` tensors).  Designs that differ only in formatting,
statement order where it does not matter, comments, ``let`` values that resolve the same, or
DSL vs YAML form are identical.

The package is itself callable: ``vlsurgery.diff(a, b)`` is :func:`diff`, so the name users call
and the package that implements it are one and the same (``import vlsurgery.diff`` never
shadows the function, because there is no separate function to shadow).

Laws (checked by :func:`vlsurgery.testing.assert_diff_laws`): ``diff(a, a).identical``;
``diff(b, a) == diff(a, b).reversed()``; the rows' trainable deltas add up to
``trainable_delta`` and their total deltas (sites count in full) to ``total_delta``.

JSON schema (``Diff.to_dict()``, ``vlsurgery diff --json``), version ``vlsurgery.diff/1``; keys are
only ever added within a version::

    {
      "schema": "vlsurgery.diff/1",
      "identical": bool,
      "same_backbone": bool,                 # false: each side resolved on its own backbone
      "a": {"spec": str|null,                # the path (null for spec text / an unnamed Spec)
            "backbone": str, "backbone_from": "spec"|"other"|"option",
            "trainable": int, "total": int, "trainable_percent": float},
      "b": {... as "a"},
      "trainable_delta": int,                # b.trainable - a.trainable
      "total_delta": int,                    # b.total - a.total
      "sites": [{                            # model order
          "change": "added"|"removed"|"changed",
          "where": str,                      # folded address, e.g. "encoder[0:6].{self_attn,ffn}"
          "sites": int, "paths": [str],      # the canonical site paths of the group
          "a": str|null, "b": str|null,      # the method as `count` describes it on each side
          "fields": [{"field": str, "a": str, "b": str}],   # changed: what differs ("method",
                                             # "gate", "heads", "r", ..., "width" across backbones)
          "a_each": int, "b_each": int,      # trainable parameters of one site on each side
          "trainable_delta": int}],          # sites * (b_each - a_each)
      "spec": [{                             # differences outside the sites
          "what": "backbone"|"projector"|"train"|"shared",
          "change": "added"|"removed"|"changed",
          "a": str|null, "b": str|null,      # that part of each design in words
          "fields": [{"field": str, "a": str, "b": str}],
          "added": [str], "removed": [str],  # train: base parameters grouped over layers
                                             # (model.encoder.layers[0:6].fc1.bias); shared: keys
          "trainable_delta": int, "total_delta": int}],
      "notes": [str]                         # e.g. which backbone a side was resolved on
    }
"""

from vlsurgery.diff.compute import diff
from vlsurgery.diff.model import Diff, FieldChange, SiteChange, SpecChange
from vlsurgery.diff.render import SCHEMA, diff_dict, render_markdown, render_text
from vlsurgery.lazy import callable_package


callable_package(__name__, diff)  # vlsurgery.diff(...) is diff(...)

__all__ = ["Diff", "FieldChange", "SCHEMA", "SiteChange", "SpecChange", "diff", "diff_dict", "render_markdown",
           "render_text"]
