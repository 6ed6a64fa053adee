"""How a choice of addresses is written back: one choice per segment where the options vary.

The reader turns ``encoder[0:6 | 6:12].(ffn|self_attn)`` into one axis of four addresses (every
combination, in order); this module finds the per-segment choices again, so that ``fmt`` prints
what was written::

    names vary:   encoder.(ffn|self_attn)
    layers vary:  encoder[0:6 | 6:12].ffn
    both:         (decoder|encoder)[0 | -1].ffn
"""

from __future__ import annotations

import itertools

from vlsurgery.spec.ir import Segment


def _distinct(items) -> list:
    return list(dict.fromkeys(items))


def address_choice_text(choice, segment_text, layer_text) -> str:
    """The DSL text of a choice of addresses; ValueError when the options are not a product of
    per-segment choices (the language has no spelling for an arbitrary list of addresses)."""
    options = choice.options
    width = {len(a.segments) for a in options}
    if len(width) != 1:
        raise ValueError("a choice of addresses of different lengths has no spelling in a spec")
    parts = []
    for i in range(width.pop()):
        names = _distinct(a.segments[i].names for a in options)
        layers = _distinct(a.segments[i].layers for a in options)
        parts.append((names, layers))
    expected = [tuple(Segment(n, lay) for (n, lay) in combo)
                for combo in itertools.product(*[list(itertools.product(n, lay)) for n, lay in parts])]
    if [tuple(Segment(s.names, s.layers) for s in a.segments) for a in options] != expected:
        raise ValueError("this choice of addresses is not one choice per segment: it has no spelling in a spec")
    texts = []
    for names, layers in parts:
        if len(names) == 1:
            text = segment_text(Segment(names[0], None))
        else:
            if any(n is None or len(n) != 1 for n in names):
                raise ValueError("a segment choice lists single names")
            text = "(" + "|".join(n[0] for n in names) + ")"
        if len(layers) > 1:
            if None in layers:
                raise ValueError("a layer-selection choice cannot include 'every layer'")
            text += "[" + " | ".join(",".join(layer_text(i) for i in lay) for lay in layers) + "]"
        elif layers[0] is not None:
            text += "[" + ",".join(layer_text(i) for i in layers[0]) + "]"
        texts.append(text)
    return ".".join(texts)
