"""The typed, immutable IR of a PET design.

The DSL and the YAML form both produce these objects, the printer turns them back into text,
the resolver (``vlsurgery.profiles``) turns them into concrete sites of a backbone.  Every class
is a frozen dataclass of tuples and scalars; source spans ride along in ``span`` fields that take
no part in equality, so the same design written in the DSL and in YAML compares equal.

A design ``spec`` written as::

    backbone bart-base
    let r = 96
    train encoder.layernorm, projector
    encoder.{self_attn,ffn}: adapter r=$r heads=4 granularity=matrix

becomes::

    Spec(backbone='bart-base',
         lets=(Param('r', 96),),
         train=(Address((Segment(('encoder',)), Segment(('layernorm',)))),
                Address((Segment(('projector',)),))),
         statements=(Statement(target=Address((Segment(('encoder',)), Segment(('ffn', 'self_attn')))),
                               method='adapter',
                               params=(Param('granularity', 'matrix'), Param('heads', 4), Param('r', Ref('r')))),))

Normalisations done at construction, so that equal designs are equal objects: alternatives in a
segment are sorted and de-duplicated; parameters are sorted by key; ``train`` targets and ``let``
bindings are sorted.  Statement order is kept: later statements override earlier ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from vlsurgery.errors import Span, span_field


@dataclass(frozen=True)
class Ref:
    """A reference to a ``let`` binding, written ``$name``."""

    name: str
    span: Span | None = span_field()

    def __str__(self) -> str:
        return f"${self.name}"


Value = Union[bool, int, float, str, Ref]

@dataclass(frozen=True)
class Index:
    """One layer, ``encoder[3]``; negative indices count from the end as in Python."""

    value: int


@dataclass(frozen=True)
class Range:
    """A Python-style slice of layers, ``encoder[0:6]``, ``decoder[-2:]``; ``stop`` is exclusive."""

    start: int | None = None
    stop: int | None = None


LayerItem = Union[Index, Range]


@dataclass(frozen=True)
class Segment:
    """One dotted part of an address: a name, an alternation ``{a,b}`` or the wildcard ``*``.

    ``names`` is None for the wildcard.  ``layers`` is a layer selection (only meaningful on the
    stack segment, ``encoder[0:6]``); None means every layer.
    """

    names: tuple[str, ...] | None
    layers: tuple[LayerItem, ...] | None = None
    span: Span | None = span_field()

    def __post_init__(self):
        if self.names is not None:
            object.__setattr__(self, "names", tuple(sorted(set(self.names))))
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(self.layers))


@dataclass(frozen=True)
class Address:
    """A role-based site pattern such as ``encoder[0:6].{self_attn,ffn}`` or ``decoder.cross_attn.v``."""

    segments: tuple[Segment, ...]
    span: Span | None = span_field()

    def __post_init__(self):
        object.__setattr__(self, "segments", tuple(self.segments))


@dataclass(frozen=True)
class Param:
    """``key=value``; also used for ``let key = value`` bindings."""

    key: str
    value: Value
    span: Span | None = span_field()


def _sorted_params(params) -> tuple[Param, ...]:
    return tuple(sorted(params, key=lambda p: p.key))


@dataclass(frozen=True)
class Statement:
    """``address: [method] key=value ...``: what to insert where.

    ``method`` None means "keep the method an earlier statement chose for these sites, or the
    default method (``adapter``) if none did" (see the override rules in ``vlsurgery.spec``).
    """

    target: Address
    method: str | None
    params: tuple[Param, ...] = ()
    span: Span | None = span_field()
    method_span: Span | None = span_field()   # where the method name is written, for errors about it

    def __post_init__(self):
        object.__setattr__(self, "params", _sorted_params(self.params))


@dataclass(frozen=True)
class Projector:
    """The visual projector of VL-BART / VL-T5 (docs/paper.md §5) and its sizes."""

    params: tuple[Param, ...] = ()
    span: Span | None = span_field()

    def __post_init__(self):
        object.__setattr__(self, "params", _sorted_params(self.params))


@dataclass(frozen=True)
class Spec:
    """A whole PET design.

    ``extends`` names the file this one builds on (a path relative to this file, or a name in
    the shipped spec library); ``vlsurgery.load`` merges it in and returns a spec without it.
    """

    backbone: str | None = None
    extends: str | None = None
    lets: tuple[Param, ...] = ()
    projector: Projector | None = None
    train: tuple[Address, ...] = ()
    statements: tuple[Statement, ...] = ()
    source: str | None = span_field()

    def __post_init__(self):
        object.__setattr__(self, "lets", _sorted_params(self.lets))
        unique = {}
        for address in self.train:
            unique.setdefault(address, address)
        object.__setattr__(self, "train", tuple(sorted(unique.values(), key=_address_key)))
        object.__setattr__(self, "statements", tuple(self.statements))


def _address_key(address: Address):
    return repr(address)
