"""The rest of two designs compared: backbone, projector, ``train`` (as base parameter names) and
Compacter's shared tensors, each a :class:`~vlsurgery.diff.model.SpecChange` with its deltas."""

from __future__ import annotations

from vlsurgery.diff.kinds import ADDED, CHANGED, REMOVED
from vlsurgery.diff.model import FieldChange, SpecChange
from vlsurgery.diff.sites import value_text as _text
from vlsurgery.render import number, params_dict, train_groups


def spec_changes(ca, cb, same_backbone: bool) -> tuple[SpecChange, ...]:
    out = []
    if not same_backbone:
        pa, pb = ca.plan.profile, cb.plan.profile
        fields = [FieldChange("shape", pa.describe(), pb.describe())] if pa.describe() != pb.describe() else []
        fields.append(FieldChange("parameters", number(ca.base), number(cb.base)))
        out.append(SpecChange("backbone", CHANGED, ca.backbone, cb.backbone, tuple(fields),
                              total_delta=cb.base - ca.base))
    for change in (_projector(ca, cb), _train(ca, cb), _shared(ca, cb)):
        if change is not None:
            out.append(change)
    return tuple(out)


def _kind(a, b) -> str:
    return ADDED if a is None else REMOVED if b is None else CHANGED


def _projector(ca, cb) -> SpecChange | None:
    pa, pb = ca.plan.projector, cb.plan.projector
    if pa is None and pb is None:
        return None
    ta, tb = ca.plan.train_projector, cb.plan.train_projector
    text = lambda p, t: None if p is None else " ".join(  # noqa: E731
        f"{k}={v}" for k, v in params_dict(p).items()) + ("" if t else " (frozen)")
    fields = []
    if pa is not None and pb is not None:
        da, db = params_dict(pa), params_dict(pb)
        fields += [FieldChange(k, _text(da[k]), _text(db[k])) for k in da if da[k] != db[k]]
        if ta != tb:
            fields.append(FieldChange("trainable", _text(ta), _text(tb)))
        if not fields and ca.projector != cb.projector:
            fields.append(FieldChange("parameters", number(ca.projector), number(cb.projector)))
        if not fields:
            return None
    return SpecChange("projector", _kind(pa, pb), text(pa, ta), text(pb, tb), tuple(fields),
                      trainable_delta=(cb.projector if tb else 0) - (ca.projector if ta else 0),
                      total_delta=cb.projector - ca.projector)


def _train_text(count) -> str | None:
    from vlsurgery.spec.printer import address_text

    plan = count.plan
    if not plan.train:
        return None
    targets = ", ".join(t for t in (address_text(a) for a in plan.spec.train) if t != "projector")
    return f"{targets} ({len(plan.train)} tensors, {number(count.base_trainable)})"


def _train(ca, cb) -> SpecChange | None:
    names_a, names_b = set(ca.plan.train), set(cb.plan.train)
    added = [n for n in cb.plan.train if n not in names_a]
    removed = [n for n in ca.plan.train if n not in names_b]
    if not added and not removed and ca.base_trainable == cb.base_trainable:
        return None
    ta, tb = _train_text(ca), _train_text(cb)
    return SpecChange("train", _kind(ta, tb), ta, tb, (), tuple(train_groups(added)), tuple(train_groups(removed)),
                      trainable_delta=cb.base_trainable - ca.base_trainable)


def _shared(ca, cb) -> SpecChange | None:
    sa, sb = ca.shared, cb.shared
    if sa == sb:
        return None
    text = lambda s: ", ".join(f"{k} ({number(v)})" for k, v in sorted(s.items())) or None  # noqa: E731
    fields = tuple(FieldChange(k, number(sa[k]), number(sb[k])) for k in sorted(sa) if k in sb and sa[k] != sb[k])
    delta = sum(sb.values()) - sum(sa.values())
    return SpecChange("shared", _kind(text(sa), text(sb)), text(sa), text(sb), fields,
                      tuple(sorted(set(sb) - set(sa))), tuple(sorted(set(sa) - set(sb))), delta, delta)
