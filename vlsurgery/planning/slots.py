"""Slots: every place on a backbone where a method can go, before anything is placed there.

A slot is a stack's input (where prefix tokens go), a sublayer of a layer (with its X and H
points) or one ``nn.Linear`` of a projection role; a role backed by several linears (``in`` of
gated T5: ``wi_0`` and ``wi_1``) gives one slot per linear, ``encoder[0].ffn.in[wi_0]``::

    >>> from vlsurgery.profiles import load_backbone
    >>> [s.path for s in slots(load_backbone("tiny-t5-gated").profile)][:4]
    ['encoder.input', 'encoder[0].self_attn', 'encoder[0].self_attn.q', 'encoder[0].self_attn.k']
"""

from __future__ import annotations

from dataclasses import dataclass

from vlsurgery.methods.registry import SiteDims
from vlsurgery.profiles.profile import Profile
from vlsurgery.spec.addresses import INPUT


@dataclass(frozen=True)
class Slot:
    """A place a method can go: its canonical path, where it is, its widths and dataflow points."""

    path: str
    stack: str
    layer: int | None
    sublayer: str | None
    projection: str | None
    kind: str
    layer_module: str | None
    dims: SiteDims
    x_point: str | None = None
    h_point: str | None = None
    linear: str | None = None
    #: (start, stop): the site changes only these output columns of its (fused) projection
    columns: tuple[int, int] | None = None

    @property
    def name_key(self) -> tuple:
        """``(stack, layer, sublayer, projection)``: what :func:`vlsurgery.spec.addresses.select` names."""
        return self.stack, self.layer, self.sublayer, self.projection


def slots(profile: Profile) -> list[Slot]:
    """Every slot of a backbone, in model order."""
    out = []
    for stack in profile.stacks:
        d = stack.d_model or profile.d_model  # a composite model's stacks can differ in width
        if stack.takes_prefix:  # e.g. not a decoder: its input is the text being generated
            out.append(Slot(f"{stack.name}.{INPUT}", stack.name, None, INPUT, None, "input", None, SiteDims(d, d)))
        for i in range(stack.n_layers):
            module = stack.layer_module(i)
            for sub in stack.sublayers:
                base = f"{stack.name}[{i}].{sub.name}"
                out.append(Slot(base, stack.name, i, sub.name, None, "sublayer", module, SiteDims(d, d),
                                sub.x_point, sub.h_point))
                # (linear, columns) -> path: roles naming one linear (LLaMA's in, gate) share its site;
                # column slices of one fused linear (GPT-2's q, k, v in c_attn) are distinct sites
                first: dict[tuple, str] = {}
                for role, linears in sub.projections:
                    for linear in linears:
                        columns = sub.columns_of(role)  # a slice of a fused projection (GPT-2's q, k, v)
                        path = first.setdefault((linear, columns), f"{base}.{role}" + (
                            f"[{linear.rsplit('.', 1)[-1]}]" if len(linears) > 1 else ""))
                        d_in, d_out = profile.linear_dims(f"{module}.{linear}")
                        if columns is not None:
                            d_out = columns[1] - columns[0]
                        out.append(Slot(path, stack.name, i, sub.name, role, "projection", module,
                                        SiteDims(d_in, d_out), linear=linear, columns=columns))
    return out


def by_names(all_slots: list[Slot]) -> dict[tuple, list[Slot]]:
    """Slots grouped by ``(stack, layer, sublayer, projection)`` (several for a multi-linear role)."""
    out: dict[tuple, list[Slot]] = {}
    for slot in all_slots:
        out.setdefault(slot.name_key, []).append(slot)
    return out
