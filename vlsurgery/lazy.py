"""Package attributes that load their module on first use, and packages that can be called.

Several packages export names whose modules import torch (``vlsurgery.methods.VLPET``,
``vlsurgery.checkpoint.restore``...).  Importing the package must stay cheap, because planning and
counting never need torch, so such names are looked up only when first read::

    >>> import sys, types
    >>> pkg = types.ModuleType("demo_pkg"); sys.modules["demo_pkg"] = pkg
    >>> pkg.__getattr__ = lazy_attributes("demo_pkg", {"dumps": "json"}, prefix="")
    >>> pkg.dumps([1, 2])
    '[1, 2]'
"""

from __future__ import annotations

import sys
import types
from importlib import import_module


def lazy_attributes(package: str, table: dict[str, str], *, prefix: str | None = None):
    """A module-level ``__getattr__`` for ``package``: ``table`` maps each lazy name to the module
    that defines it (a submodule of ``package`` unless ``prefix`` says otherwise); the value is
    cached on the package after the first lookup."""
    base = f"{package}." if prefix is None else prefix

    def __getattr__(name: str):
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f"{base}{table[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__


def callable_package(package: str, function) -> None:
    """Make the package ``package`` callable as ``function`` (``vlsurgery.diff(a, b)`` is
    ``vlsurgery.diff.diff(a, b)``).  Python calls an object through its type, so the module's
    class becomes a ModuleType whose ``__call__`` is ``function``."""
    call = staticmethod(function)  # the module itself is not an argument
    sys.modules[package].__class__ = type("CallablePackage", (types.ModuleType,), {"__call__": call})
