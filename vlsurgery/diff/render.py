"""A :class:`~vlsurgery.diff.model.Diff` as text, as a Markdown table and as JSON.

Rows are marked like a unified diff: ``+`` added in b, ``-`` removed from b, ``~`` changed; each
row ends with its trainable-parameter difference, the last lines with the totals of both sides.
"""

from __future__ import annotations

from vlsurgery.diff.kinds import ADDED, REMOVED
from vlsurgery.render import number, table

SCHEMA = "vlsurgery.diff/1"
_MARK = {ADDED: "+", REMOVED: "-"}


def _signed(value: int) -> str:
    return f"{value:+,}" if value else "0"


def _mark(change: str) -> str:
    return _MARK.get(change, "~")


def _side(d, side: str) -> dict:
    count = d.a_count if side == "a" else d.b_count
    return {"spec": d.a_title if side == "a" else d.b_title, "backbone": count.backbone,
            "backbone_from": d.a_backbone_from if side == "a" else d.b_backbone_from,
            "trainable": count.trainable, "total": count.total, "trainable_percent": count.trainable_percent}


def _fields(fields) -> list[dict]:
    return [{"field": f.name, "a": f.a, "b": f.b} for f in fields]


def diff_dict(d) -> dict:
    """The JSON form (schema in :mod:`vlsurgery.diff`)."""
    return {
        "schema": SCHEMA,
        "identical": d.identical,
        "same_backbone": d.same_backbone,
        "a": _side(d, "a"),
        "b": _side(d, "b"),
        "trainable_delta": d.trainable_delta,
        "total_delta": d.total_delta,
        "sites": [{"change": c.change, "where": c.where, "sites": c.sites, "paths": list(c.paths), "a": c.a,
                   "b": c.b, "fields": _fields(c.fields), "a_each": c.a_each, "b_each": c.b_each,
                   "trainable_delta": c.trainable_delta} for c in d.site_changes],
        "spec": [{"what": c.what, "change": c.change, "a": c.a, "b": c.b, "fields": _fields(c.fields),
                  "added": list(c.added), "removed": list(c.removed), "trainable_delta": c.trainable_delta,
                  "total_delta": c.total_delta} for c in d.spec_changes],
        "notes": list(d.notes),
    }


# --------------------------------------------------------------------------------------------
# text


def _spec_summary(c) -> str:
    if c.what == "train":
        return _train_summary(c)
    if c.what == "backbone":
        params = next((f for f in c.fields if f.name == "parameters"), None)
        return f"{c.a} -> {c.b}" + (f" ({params.a} -> {params.b} parameters)" if params else "")
    if c.fields and c.a is not None and c.b is not None:
        return "; ".join(str(f) for f in c.fields)
    return c.b if c.a is None else c.a if c.b is None else f"{c.a} -> {c.b}"


def _train_summary(c) -> str:
    a, b = c.a or "nothing", c.b or "nothing"
    return f"{a} -> {b}"


def _heading(d, arrow: str = "->") -> list[str]:
    lines = [f"--- a: {d.a_title or '(spec a)'}", f"+++ b: {d.b_title or '(spec b)'}"]
    pa, pb = d.a_count.plan, d.b_count.plan
    if d.same_backbone:
        lines.append(f"backbone {pa.backbone.name}: {pa.profile.describe()}")
    else:
        lines.append(f"backbones {pa.backbone.name} {arrow} {pb.backbone.name}: "
                     f"{pa.profile.describe()} {arrow} {pb.profile.describe()}")
    lines += [f"note: {n}" for n in d.notes]
    return lines


def _totals(d, arrow: str = "->") -> list[tuple[str, str]]:
    a, b = d.a_count, d.b_count
    return [("trainable", f"{number(a.trainable)} {arrow} {number(b.trainable)}  ({_signed(d.trainable_delta)})   "
                          f"{a.trainable_percent:.4f} % {arrow} {b.trainable_percent:.4f} %"),
            ("total", f"{number(a.total)} {arrow} {number(b.total)}  ({_signed(d.total_delta)})")]


def render_text(d) -> str:
    """The table ``vlsurgery diff`` prints."""
    lines = _heading(d) + [""]
    if d.identical:
        a = d.a_count
        lines.append(f"identical: the same sites and extras; trainable {number(a.trainable)} of {number(a.total)} "
                     f"parameters ({a.trainable_percent:.4f} %)")
        return "\n".join(lines) + "\n"
    rows = [("", "where", "change", "sites x each", "trainable")]
    for c in d.site_changes:
        rows.append((_mark(c.change), c.where, c.summary, f"{c.sites} x {_signed(c.each_delta)}",
                     _signed(c.trainable_delta)))
    for c in d.spec_changes:
        rows.append((_mark(c.change), c.what, _spec_summary(c), "", _signed(c.trainable_delta)))
    lines += table(rows, right={3, 4})
    for c in d.spec_changes:
        if c.what == "train" and (c.added or c.removed):
            lines += ["", "train: base parameters now trainable (+) or frozen (-)"]
            lines += [f"  + {g}" for g in c.added] + [f"  - {g}" for g in c.removed]
    lines.append("")
    lines += [f"{k:<10} {v}" for k, v in _totals(d)]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# markdown


def _cell(text) -> str:
    return "" if text is None else str(text).replace("|", "\\|").replace("->", "→")


def _code(text: str) -> str:
    return f"`{text}`"


def render_markdown(d) -> str:
    """A GitHub-flavoured Markdown table to paste into a paper draft or a pull request."""
    a_name, b_name = d.a_title or "a", d.b_title or "b"
    pa, pb = d.a_count.plan, d.b_count.plan
    where = (f"on {_code(pa.backbone.name)}" if d.same_backbone
             else f"on {_code(pa.backbone.name)} → {_code(pb.backbone.name)}")
    lines = [f"**{_code(a_name)} → {_code(b_name)}** {where}", ""]
    lines += [f"> {_cell(n)}" for n in d.notes] + ([""] if d.notes else [])
    if d.identical:
        a = d.a_count
        lines.append(f"Identical designs: trainable {number(a.trainable)} of {number(a.total)} parameters "
                     f"({a.trainable_percent:.4f} %).")
        return "\n".join(lines) + "\n"
    lines += ["| | where | change | sites | Δ trainable |", "|:-:|:--|:--|--:|--:|"]
    for c in d.site_changes:
        lines.append(f"| {_mark(c.change)} | {_code(c.where)} | {_cell(c.summary)} | {c.sites} | "
                     f"{_signed(c.trainable_delta)} |")
    for c in d.spec_changes:
        lines.append(f"| {_mark(c.change)} | {c.what} | {_cell(_spec_summary(c))} | | {_signed(c.trainable_delta)} |")
    (_, trainable), (_, total) = _totals(d, "→")
    lines.append(f"| | **trainable** | {trainable.split('  (')[0]} ({d.a_count.trainable_percent:.4f} % → "
                 f"{d.b_count.trainable_percent:.4f} %) | | **{_signed(d.trainable_delta)}** |")
    lines.append(f"| | **total** | {total.split('  (')[0]} | | {_signed(d.total_delta)} |")
    for c in d.spec_changes:
        if c.what == "train" and (c.added or c.removed):
            lines += ["", "Base parameters made trainable (+) or frozen (−):", ""]
            lines += [f"- + {_code(g)}" for g in c.added] + [f"- − {_code(g)}" for g in c.removed]
    return "\n".join(lines) + "\n"
