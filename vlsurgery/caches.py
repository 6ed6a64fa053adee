"""One owner for every module-level cache of vlsurgery, so that all of them can be cleared at once.

vlsurgery memoises work that is pure but not free: the LALR parser, preset JSON files, profiles
of configs, the registered backbone families and their role vocabulary, traced layer graphs and
the runtime classes the compiler makes.  Each such cache registers here, under a name::

    >>> from vlsurgery import caches
    >>> squares = caches.table("example.squares")      # a plain dict, cleared by caches.clear()
    >>> squares[3] = 9
    >>> @caches.memoize("example.cube")
    ... def cube(x):
    ...     return x ** 3
    >>> cube(2), caches.sizes()["example.squares"]
    (8, 1)
    >>> caches.clear(); caches.sizes()["example.squares"]
    0

``clear()`` is what a test calls after registering a new backbone family, or a long-running
process after loading many models: nothing is lost but time, every cache refills on use.
Clearing the compiler's class caches does not affect models already compiled: their runtime
classes stay alive through the models.
"""

from __future__ import annotations

import functools
from typing import Callable

_TABLES: dict[str, dict] = {}
_FUNCTIONS: dict[str, Callable] = {}


def table(name: str) -> dict:
    """The cache dict registered as ``name`` (created empty on first request)."""
    return _TABLES.setdefault(name, {})


def memoize(name: str, maxsize: int | None = None):
    """``functools.lru_cache`` whose cache is registered as ``name``."""

    def wrap(fn):
        cached = functools.lru_cache(maxsize=maxsize)(fn)
        _FUNCTIONS[name] = cached
        return cached

    return wrap


def clear(prefix: str = "") -> None:
    """Empty every registered cache whose name starts with ``prefix`` (all of them by default)."""
    for name, store in _TABLES.items():
        if name.startswith(prefix):
            store.clear()
    for name, fn in _FUNCTIONS.items():
        if name.startswith(prefix):
            fn.cache_clear()


def sizes() -> dict[str, int]:
    """How many entries each registered cache holds, by name."""
    out = {name: len(store) for name, store in _TABLES.items()}
    out.update({name: fn.cache_info().currsize for name, fn in _FUNCTIONS.items()})
    return out
