"""The diff engine: two specs -> their plans -> a :class:`~vlsurgery.diff.model.Diff`.

The comparison runs on resolved plans, never on text: sites are matched by canonical path
(``encoder[3].self_attn``), hyperparameters are compared after the registry filled site-derived
values (``r = d / reduction``), ``train`` targets are compared as the base parameter names they
resolve to.  Formatting, statement order, comments, ``let`` values and the DSL/YAML choice
therefore make no difference.

Sites with the same change are folded twice: first over layers (``encoder[0:6].ffn``, with
:func:`vlsurgery.render.group_key` as ``count`` does), then over projections, sublayers
and stacks (``encoder[0:6].{self_attn,ffn}``) when everything else about the change is the same.
"""

from __future__ import annotations

from vlsurgery.diff.extras import spec_changes
from vlsurgery.diff.model import Diff
from vlsurgery.diff.sites import site_changes
from vlsurgery.errors import BackboneError
from vlsurgery.planning import count_plan, load_spec
from vlsurgery.planning.resolve import resolve
from vlsurgery.profiles import load_backbone
from vlsurgery.spec import Spec


def diff(a, b, backbone=None) -> Diff:
    """Compare two designs on their resolved plans.

    ``a``, ``b``: a :class:`~vlsurgery.spec.Spec`, a path (``extends`` merged) or spec text.
    ``backbone``: resolve both on it; None: each on its own spec's backbone (a spec that names
    none borrows the other's).  Raises SpecError / ResolutionError / BackboneError.
    """
    spec_a, spec_b = load_spec(a), load_spec(b)
    if backbone is not None:
        bb_a = bb_b = load_backbone(backbone)
        from_a = from_b = "option"
    else:
        name_a, name_b = spec_a.backbone, spec_b.backbone
        if name_a is None and name_b is None:
            raise BackboneError("neither spec names a backbone: name one in a spec (`backbone bart-base`) or "
                                "pass one (--backbone NAME, or diff(a, b, backbone=...))")
        bb_a = load_backbone(name_a if name_a is not None else name_b)
        bb_b = bb_a if name_b in (None, name_a) else load_backbone(name_b)
        from_a = "spec" if name_a is not None else "other"
        from_b = "spec" if name_b is not None else "other"
    count_a, count_b = count_plan(resolve(spec_a, bb_a)), count_plan(resolve(spec_b, bb_b))
    same = bb_a is bb_b or bb_a.profile == bb_b.profile
    return Diff(_title(a, spec_a), _title(b, spec_b), site_changes(count_a.plan, count_b.plan),
                spec_changes(count_a, count_b, same), same, from_a, from_b, count_a, count_b)


def _title(given, spec) -> str | None:
    if isinstance(given, Spec):
        return spec.source
    if isinstance(given, str) and "\n" in given:
        return None  # spec text
    return str(given)
