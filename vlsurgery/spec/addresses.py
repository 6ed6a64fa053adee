"""Roles of addresses, and which statements may touch the same sites (without a backbone).

An address names *sites*: ``(stack, layer, sublayer, projection)`` for sublayer and projection
sites (projection ``None`` for a sublayer site), ``(stack, None, "input", None)`` for a stack's
input.  A sublayer site and the projection sites inside it are different sites: ``encoder.ffn``
and ``encoder.ffn.in`` never override each other.

Whether two addresses share a site is decided exactly from the names, and from the layer
selections for every number of layers a stack may have; when the answer depends on that number
(``encoder[0:2]`` and ``encoder[-1]`` overlap only if the stack has at most two layers) it is
``"maybe"``::

    >>> from vlsurgery.spec import parse
    >>> a, b = (s.target for s in parse("encoder[0:2].ffn: lite; encoder[-1].ffn: none").statements)
    >>> overlap(a, b)
    'maybe'
"""

from __future__ import annotations

import itertools

from vlsurgery.spec.ir import Address, Index, LayerItem

STACKS = ("decoder", "encoder")
SUBLAYERS = ("cross_attn", "ffn", "self_attn")
INPUT = "input"
PROJECTIONS = {"self_attn": ("k", "o", "q", "v"), "cross_attn": ("k", "o", "q", "v"), "ffn": ("in", "out")}
ALL_PROJECTIONS = ("in", "k", "o", "out", "q", "v")
#: Sublayers each stack has (the encoder of an encoder-decoder model has no cross-attention).
STACK_SUBLAYERS = {"encoder": ("ffn", "self_attn"), "decoder": SUBLAYERS}
#: Last segments that only ``train`` accepts, and its one-word targets.
TRAIN_PARTS = ("bias", "layernorm")
TRAIN_WORDS = ("all", "projector")


def kind(address: Address) -> str:
    """The kind of site an address names: ``sublayer``, ``projection`` or ``input``."""
    segs = address.segments
    if len(segs) >= 2 and segs[1].names == (INPUT,):
        return "input"
    return "projection" if len(segs) >= 3 else "sublayer"


def site_names(address: Address) -> set[tuple]:
    """The ``(stack, sublayer, projection)`` triples an address names (layers aside)."""
    segs = address.segments
    stacks = segs[0].names or STACKS
    if kind(address) == "input":
        return {(s, INPUT, None) for s in stacks if s in STACKS}
    out = set()
    for stack in stacks:
        subs = segs[1].names if len(segs) > 1 and segs[1].names else STACK_SUBLAYERS.get(stack, ())
        for sub in subs:
            if sub not in STACK_SUBLAYERS.get(stack, ()):
                continue
            if len(segs) < 3:
                out.add((stack, sub, None))
            else:
                projs = segs[2].names or PROJECTIONS[sub]
                out.update((stack, sub, p) for p in projs if p in PROJECTIONS[sub])
    return out


def layer_set(layers: tuple[LayerItem, ...] | None, count: int) -> set[int] | None:
    """The layers a selection picks in a stack of ``count`` layers; None if an index is out of range."""
    if layers is None:
        return set(range(count))
    out: set[int] = set()
    for item in layers:
        if isinstance(item, Index):
            if not -count <= item.value < count:
                return None
            out.add(item.value % count)
        else:
            out.update(range(*slice(item.start, item.stop).indices(count)))
    return out


def _bound(layers) -> int:
    values = [0]
    for item in layers or ():
        values += [item.value] if isinstance(item, Index) else [item.start or 0, item.stop or 0]
    return max(abs(v) for v in values)


def _counts(*selections):
    """Numbers of layers worth trying: every answer is stable beyond twice the largest index."""
    top = 2 * max(_bound(s) for s in selections) + 2
    return range(1, min(top, 512) + 1)


def _for_every_count(a, b, test) -> str:
    results = set()
    for count in _counts(a, b):
        sa, sb = layer_set(a, count), layer_set(b, count)
        if sa is not None and sb is not None:
            results.add(test(sa, sb))
    if results == {True}:
        return "yes"
    return "maybe" if True in results else "no"


def overlap(a: Address, b: Address) -> str:
    """``"yes"`` if two addresses share a site on every backbone, ``"no"`` on none, else ``"maybe"``."""
    if kind(a) != kind(b) or not site_names(a) & site_names(b):
        return "no"
    la, lb = a.segments[0].layers, b.segments[0].layers
    if la is None and lb is None:
        return "yes"
    return _for_every_count(la, lb, lambda sa, sb: bool(sa & sb))


def covers(a: Address, b: Address) -> bool:
    """True if every site of ``b`` is a site of ``a``, whatever the number of layers."""
    names = site_names(b)
    if kind(a) != kind(b) or not names or not names <= site_names(a):
        return False
    la, lb = a.segments[0].layers, b.segments[0].layers
    if la is None:
        return True
    return _for_every_count(la, lb, lambda sa, sb: sb <= sa) == "yes"


def earlier_overlaps(statements) -> list[list[tuple[int, str]]]:
    """For each statement, the earlier statements ``(index, "yes"|"maybe")`` it may override."""
    out = []
    for i, stmt in enumerate(statements):
        found = []
        for j in range(i):
            verdict = overlap(statements[j].target, stmt.target)
            if verdict != "no":
                found.append((j, verdict))
        out.append(found)
    return out


def effect(earlier_method: str | None, later_method: str | None) -> str:
    """What a later statement does to an earlier one's configuration on the sites they share."""
    if later_method == "none":
        return "removes"
    if later_method is None or later_method == earlier_method:
        return "merges into"
    if earlier_method is None:
        return "merges into or replaces"
    return "replaces"


def all_names() -> tuple[str, ...]:
    """Every role name an address may use, for 'did you mean'."""
    return tuple(itertools.chain(STACKS, SUBLAYERS, (INPUT,), ALL_PROJECTIONS, TRAIN_PARTS, TRAIN_WORDS))
