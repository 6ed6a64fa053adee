"""What a diff is: :class:`Diff` (two designs compared), made of :class:`SiteChange` and
:class:`SpecChange` rows with their :class:`FieldChange` details (computed in
:mod:`vlsurgery.diff.compute`, printed by :mod:`vlsurgery.diff.render`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vlsurgery.diff.kinds import ADDED, CHANGED, REMOVED

_MIRROR = {ADDED: REMOVED, REMOVED: ADDED, CHANGED: CHANGED}


@dataclass(frozen=True)
class FieldChange:
    """One field that differs: ``gate: vector -> matrix(r=96)``.  ``a``/``b`` are display texts."""

    name: str
    a: str
    b: str

    def __str__(self) -> str:
        return f"{self.name}: {self.a} -> {self.b}"

    def reversed(self) -> FieldChange:
        return FieldChange(self.name, self.b, self.a)


@dataclass(frozen=True)
class SiteChange:
    """Sites added, removed or changed in the same way, folded into one address ``where``.

    ``a``/``b``: the method as ``count`` describes it (``adapter r=96 heads=4 gate=matrix(r=96)``),
    None on the side without the sites.  ``fields``: for a change, what differs field by field
    (``method`` alone when the method itself changed).  ``a_each``/``b_each``: trainable
    parameters of one site on each side (0 on the side without it).
    """

    change: str
    where: str
    paths: tuple[str, ...]
    a: str | None
    b: str | None
    fields: tuple[FieldChange, ...]
    a_each: int
    b_each: int

    @property
    def sites(self) -> int:
        return len(self.paths)

    @property
    def each_delta(self) -> int:
        return self.b_each - self.a_each

    @property
    def trainable_delta(self) -> int:
        return self.sites * self.each_delta

    @property
    def summary(self) -> str:
        """What changed, in words: the description, both descriptions, or the fields."""
        if self.change == ADDED:
            return self.b
        if self.change == REMOVED:
            return self.a
        if any(f.name == "method" for f in self.fields):
            return f"{self.a} -> {self.b}"
        return "; ".join(str(f) for f in self.fields)

    def reversed(self) -> SiteChange:
        return SiteChange(_MIRROR[self.change], self.where, self.paths, self.b, self.a,
                          tuple(f.reversed() for f in self.fields), self.b_each, self.a_each)


@dataclass(frozen=True)
class SpecChange:
    """A difference outside the sites: ``backbone``, ``projector``, ``train`` or ``shared``.

    ``a``/``b``: that part of each design in words (None where a design lacks it); ``fields``: what
    differs; ``added``/``removed``: for ``train``, base parameters that became / stopped being
    trainable, grouped over layers as ``count`` shows them; for ``shared``, tensor keys.
    """

    what: str
    change: str
    a: str | None
    b: str | None
    fields: tuple[FieldChange, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    trainable_delta: int = 0
    total_delta: int = 0

    def reversed(self) -> SpecChange:
        return SpecChange(self.what, _MIRROR[self.change], self.b, self.a, tuple(f.reversed() for f in self.fields),
                          self.removed, self.added, -self.trainable_delta, -self.total_delta)


@dataclass(frozen=True)
class Diff:
    """What changed from design ``a`` to design ``b`` and what it costs (see :mod:`vlsurgery.diff`).

    ``a_count``/``b_count``: the full :class:`~vlsurgery.profiles.Count` of each side (their
    ``.plan`` is the resolved plan).  ``a_backbone_from``/``b_backbone_from``: where each side's
    backbone came from: ``spec`` (its own), ``other`` (it names none; the other spec's was used)
    or ``option`` (``backbone=`` / ``--backbone``).
    """

    a_title: str | None
    b_title: str | None
    site_changes: tuple[SiteChange, ...]
    spec_changes: tuple[SpecChange, ...]
    same_backbone: bool
    a_backbone_from: str
    b_backbone_from: str
    a_count: object = field(compare=False, repr=False)
    b_count: object = field(compare=False, repr=False)

    @property
    def identical(self) -> bool:
        return not self.site_changes and not self.spec_changes

    @property
    def trainable_delta(self) -> int:
        return self.b_count.trainable - self.a_count.trainable

    @property
    def total_delta(self) -> int:
        return self.b_count.total - self.a_count.total

    @property
    def notes(self) -> tuple[str, ...]:
        out = []
        for side, other, source in (("a", "b", self.a_backbone_from), ("b", "a", self.b_backbone_from)):
            if source == "other":
                out.append(f"{side} names no backbone: resolved on {other}'s ({self._count(other).backbone})")
        if not self.same_backbone:
            out.append(f"different backbones ({self.a_count.backbone}, {self.b_count.backbone}): each design is "
                       "resolved on its own; site parameters follow each backbone's widths")
        return tuple(out)

    def _count(self, side: str):
        return self.a_count if side == "a" else self.b_count

    def reversed(self) -> Diff:
        """The diff from ``b`` to ``a``: added <-> removed, every change and delta reversed."""
        return Diff(self.b_title, self.a_title, tuple(c.reversed() for c in self.site_changes),
                    tuple(c.reversed() for c in self.spec_changes), self.same_backbone,
                    self.b_backbone_from, self.a_backbone_from, self.b_count, self.a_count)

    def to_dict(self) -> dict:
        from vlsurgery.diff.render import diff_dict

        return diff_dict(self)

    def to_json(self, indent: int | None = 2) -> str:
        import json

        return json.dumps(self.to_dict(), indent=indent)

    def render(self) -> str:
        from vlsurgery.diff.render import render_text

        return render_text(self)

    def markdown(self) -> str:
        from vlsurgery.diff.render import render_markdown

        return render_markdown(self)

    def __str__(self) -> str:
        return self.render()
