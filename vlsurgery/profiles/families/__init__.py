"""Every backbone family vlsurgery supports: one module per family in this package.

A module here that defines ``FAMILIES`` (a tuple of :class:`~vlsurgery.profiles.profile.Family`)
is a family file; the package is scanned on first use, so adding a family is adding a file
(see ``docs/design.md``).  Nothing else names the families: the spec language takes its address
vocabulary from them (:func:`vocabulary`, the union of every family's roles), and a config finds
its family by ``model_type`` (:func:`family_of`).  After adding a folder to this package's
``__path__`` at run time, call ``vlsurgery.caches.clear()`` so that the scan runs again.
"""

from __future__ import annotations

import importlib
import pkgutil

from vlsurgery import caches
from vlsurgery.errors import BackboneError, nearest
from vlsurgery.profiles.profile import Family, Roles


@caches.memoize("profiles.families")
def known_families() -> dict[str, Family]:
    """Every family, by the ``model_type`` values it covers."""
    out: dict[str, Family] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for family in getattr(module, "FAMILIES", ()):
            for model_type in family.model_types:
                if model_type in out and out[model_type] is not family:
                    raise BackboneError(f"model type '{model_type}' is claimed by two families: "
                                        f"{out[model_type].name} and {family.name} ({module.__name__})")
                out[model_type] = family
    return out


@caches.memoize("profiles.vocabulary")
def vocabulary() -> Roles:
    """The roles any family has: what an address may name when no backbone is known."""
    return Roles.union(*{f.name: f.roles for f in known_families().values()}.values())


def family_of(config) -> Family:
    """The family of a config, by its ``model_type``; a :class:`BackboneError` listing them if none."""
    model_type = getattr(config, "model_type", None)
    family = known_families().get(model_type)
    if family is None:
        guess = nearest(str(model_type), known_families())
        hint = f" (did you mean '{guess}'?)" if guess else ""
        raise BackboneError(f"unsupported backbone family '{model_type}'{hint}; vlsurgery supports: "
                            + ", ".join(sorted(known_families())))
    return family
