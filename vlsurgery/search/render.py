"""What ``vlsurgery search`` prints: a table (text or Markdown) and a JSON object."""

from __future__ import annotations

from vlsurgery.render import number, table


def _summary(outcome) -> list[str]:
    lines = [f"{len(outcome.results):,} of {outcome.members:,} designs listed"]
    if outcome.over_budget:
        lines.append(f"{outcome.over_budget:,} over the budget")
    if outcome.not_listed:
        lines.append(f"{outcome.not_listed:,} more within the budget not listed")
    if outcome.under_minimum:
        lines.append(f"{outcome.under_minimum:,} under the minimum")
    for message, n in sorted(outcome.invalid.items()):
        lines.append(f"{n:,} do not plan: {message}")
    return lines


def _rows(outcome) -> tuple[list[str], list[tuple]]:
    space = outcome.results[0].space if outcome.results else None
    labels = [a.label for a in space.axes] if space else []
    rows = [(str(n), *[r.choices[k] for k in labels], number(r.trainable), f"{r.trainable_percent:.3f}%")
            for n, r in enumerate(outcome.results, 1)]
    return ["#", *labels, "trainable", "%"], rows


def render_text(outcome, title: str) -> str:
    head, rows = _rows(outcome)
    out = [f"{title} on {outcome.backbone}: " + ", ".join(_summary(outcome))]
    if rows:
        out += [""] + table([tuple(head)] + rows, right={0, len(head) - 2, len(head) - 1})
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(outcome, title: str) -> str:
    head, rows = _rows(outcome)
    out = [f"**{_md(title)}** on `{outcome.backbone}`: " + ", ".join(_summary(outcome)), ""]
    if rows:
        out.append("| " + " | ".join(_md(h) for h in head) + " |")
        out.append("|" + "|".join("---:" if i in (0, len(head) - 2, len(head) - 1) else "---"
                                  for i in range(len(head))) + "|")
        out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


def outcome_json(outcome, title: str) -> dict:
    return {"space": title, "backbone": outcome.backbone, "members": outcome.members,
            "listed": len(outcome.results), "over_budget": outcome.over_budget,
            "under_minimum": outcome.under_minimum,
            "not_listed": outcome.not_listed, "invalid": dict(sorted(outcome.invalid.items())),
            "designs": [{"choices": r.choices, "trainable": r.trainable, "total": r.total,
                         "trainable_percent": r.trainable_percent} for r in outcome.results]}
