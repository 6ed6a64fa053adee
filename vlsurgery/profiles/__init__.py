"""Backbone profiles: pure data about the model families vlsurgery can rewrite.

A family lives in one file under ``vlsurgery/profiles/families/`` (found automatically: a new
file there is a new family, nothing else to edit).  It declares

- its **role vocabulary** (:class:`Roles`): the stacks, the sublayers of each stack and the
  projection roles of each sublayer that addresses may name (``encoder``, ``self_attn``, ``v``);
  the spec language accepts the union over all families, a plan the backbone's own;
- how a config maps those roles to module paths and to the X/H dataflow points
  (:class:`Profile`), and every base parameter with its shape, so that counting never builds a
  model.

``load_backbone(name | path | config | model)`` turns what a user gives into a :class:`Backbone`
(presets in ``presets/*.json`` work offline); ``vocabulary()`` is the union of every family's
roles.  Planning lives in :mod:`vlsurgery.planning`, counting there too.
"""

from __future__ import annotations

from vlsurgery.profiles.backbone import (Backbone, backbone_name_problem, load_backbone, preset_config, preset_names,
                                         profile_of)
from vlsurgery.profiles.families import family_of, known_families, vocabulary
from vlsurgery.profiles.profile import Family, Norm, Profile, Roles, Stack, Sublayer

__all__ = ["Backbone", "Family", "Norm", "Profile", "Roles", "Stack", "Sublayer", "backbone_name_problem", "family_of",
           "known_families", "load_backbone", "preset_config", "preset_names", "profile_of", "vocabulary"]
