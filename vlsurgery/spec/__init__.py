"""The spec language: the ``.vls`` DSL and its YAML form, both compiled to one typed IR.

Public API::

    parse(text, source=None, format=None) -> Spec     # as written (extends not merged), validated
    load(path) -> Spec                                # a file, extends merged, validated
    dumps(spec, format="dsl") -> str                  # canonical text; parse(dumps(s)) == s
    resolve_lets(spec) -> Spec                        # $refs replaced by their let's value
    validate(spec) -> [Problem]                       # errors and warnings, without raising
    load_space(path) / parse_space(text) -> Space     # a design space: choices (a|b), members are Specs

Override rule (statements apply in order, site by site): a statement with a method different from
the site's current one replaces the site's configuration; with the same method, or with no
method, its parameters are merged over the current ones field by field; with no method on a site
that has none yet it means ``adapter``; ``none`` removes the site.  :func:`summarize` (what
``vlsurgery check`` prints) lists, for each statement, the earlier statements it may override.
See docs/language.md for the whole language.
"""

from __future__ import annotations

from vlsurgery.errors import UsageError
from vlsurgery.spec.ir import Address, Index, Param, Projector, Range, Ref, Segment, Spec, Statement
from vlsurgery.spec.loader import guess_format, load, load_space, merge, parse, parse_space, resolve_lets
from vlsurgery.spec.printer import address_text, dumps_dsl, dumps_yaml
from vlsurgery.spec.space import Space, checked
from vlsurgery.spec.summary import summarize


def validate(spec: Spec, *, strict_refs: bool | None = None, where: dict | None = None):
    """Every problem of a spec, errors and warnings, without raising (see
    :func:`vlsurgery.spec.validate.validate`); a design space is one error that says so."""
    return checked(spec, False, strict_refs=strict_refs, where=where)


def dumps(spec: Spec, format: str = "dsl") -> str:
    """Canonical text of a spec in ``"dsl"`` or ``"yaml"``; ``parse(dumps(spec, f), format=f) == spec``."""
    if format == "dsl":
        return dumps_dsl(spec)
    if format == "yaml":
        return dumps_yaml(spec)
    raise UsageError(f"unknown spec format {format!r}: expected dsl or yaml")


__all__ = ["Address", "Index", "Param", "Projector", "Range", "Ref", "Segment", "Space", "Spec", "Statement",
           "address_text", "dumps", "guess_format", "load", "load_space", "merge", "parse", "parse_space", "resolve_lets", "summarize",
           "validate"]
