"""A design as a picture: the model's stacks and layers, every site where it attaches (SVG).

Layout, one panel per design, one column per stack, one row per layer::

    encoder                          the stack's input: prefix tokens (prompt / projector) as squares
    [0]  ─X─[ self_attn  q k v o ]─H──X─[ ffn  in out ]─H─      the residual stream, left to right
          ▬▬▬▬▬ sublayer site ▬▬▬▬      projection sites: the chip of their projection, filled

A sublayer site is a bar on the residual stream between its sublayer's X and H points; a
projection site fills its projection's chip; prefix tokens sit at the stack's input; a base
parameter made trainable by ``train`` outlines what owns it (a sublayer's norm: the ``LN`` chip;
a stack's own norms: its title).  Colour: trainable parameters of the site, on a log scale shared
by every panel (the legend shows it).  Every site is one element with ``data-site`` (its path),
``data-method`` and ``data-trainable``, and a ``<title>`` tooltip; the SVG references nothing
outside itself.  With a diff, changed sites get a coloured outline (added, removed, changed).
"""

from __future__ import annotations

import math
from html import escape

from vlsurgery.diff.kinds import ADDED, CHANGED, REMOVED
from vlsurgery.render import describe

ROW, LABEL, BOX_H, CHIP_W, CHIP_H, GAP, PAD = 46, 34, 26, 24, 12, 14, 16
CHANGE_COLOURS = {ADDED: "#1a9850", REMOVED: "#d73027", CHANGED: "#f28e2b"}
_RAMP = ((255, 247, 188), (254, 196, 79), (236, 112, 20), (153, 52, 4))


def colour(value: int, low: int, high: int) -> str:
    """A colour for ``value`` on a log scale from ``low`` (pale yellow) to ``high`` (dark brown)."""
    if high <= low:
        t = 1.0
    else:
        t = (math.log(max(value, 1)) - math.log(max(low, 1))) / (math.log(max(high, 1)) - math.log(max(low, 1)))
    t = min(max(t, 0.0), 1.0) * (len(_RAMP) - 1)
    i = min(int(t), len(_RAMP) - 2)
    f = t - i
    r, g, b = (round(a + (c - a) * f) for a, c in zip(_RAMP[i], _RAMP[i + 1]))
    return f"#{r:02x}{g:02x}{b:02x}"


def _attrs(**kw) -> str:
    return " ".join(f'{k.rstrip("_").replace("_", "-")}="{escape(str(v), quote=True)}"' for k, v in kw.items()
                    if v is not None)


class _Canvas:
    def __init__(self):
        self.parts: list[str] = []

    def add(self, tag: str, body: str | None = None, **kw) -> None:
        self.parts.append(f"<{tag} {_attrs(**kw)}>{body}</{tag}>" if body is not None else f"<{tag} {_attrs(**kw)}/>")

    def text(self, x, y, text, **kw) -> None:
        self.add("text", escape(text), x=x, y=y, **kw)


def _chip_roles(sub) -> list[str]:
    """The roles that get a chip: a role whose linears an earlier role already names (LLaMA's
    ``in`` after ``gate``) has no site of its own, the earlier role's path stands for it (the
    ``(linear, columns)`` key of planning/slots.py), so a chip of its own would stay empty."""
    seen, out = set(), []
    for role, linears in sub.projections:
        keys = {(linear, sub.columns_of(role)) for linear in linears}
        if not keys <= seen:
            out.append(role)
        seen |= keys
    return out


def _sublayer_width(sub) -> int:
    return 64 + (len(_chip_roles(sub)) + 1) * (CHIP_W + 4)


def _stack_width(stack) -> int:
    return LABEL + sum(_sublayer_width(s) + 2 * GAP for s in stack.sublayers)


def panel_size(profile) -> tuple[int, int]:
    width = sum(_stack_width(s) + PAD for s in profile.stacks) + PAD
    height = max(s.n_layers for s in profile.stacks) * ROW + 110
    return width, height


def _site_element(c: _Canvas, site, shape: str, fill: str, change: str | None, **geometry) -> None:
    tooltip = f"{site.path}: {describe(site.method, site.params)} — {site.trainable:,} trainable"
    stroke = CHANGE_COLOURS.get(change or "", "#333333")
    c.add(shape, f"<title>{escape(tooltip)}</title>", class_="site", data_site=site.path, data_method=site.method,
          data_trainable=site.trainable, data_change=change, fill=fill, stroke=stroke,
          stroke_width=2.5 if change else 0.8, **geometry)


def draw_panel(c: _Canvas, plan, count, x0: int, y0: int, scale: tuple[int, int], title: str,
               changes: dict | None = None) -> None:
    """One design: its title and totals, then each stack with its sites."""
    profile, changes = plan.profile, changes or {}
    sites = {s.path: s for s in plan.sites}
    trained = set(plan.train)
    c.text(x0 + PAD, y0 + 18, title, font_weight="bold", font_size=14)
    c.text(x0 + PAD, y0 + 36, f"{plan.backbone.name}: {count.trainable:,} trainable of {count.total:,} "
           f"({count.trainable_percent:.2f}%)", font_size=11)
    x = x0 + PAD
    for stack in profile.stacks:
        top = y0 + 56
        own_norms = any(n.startswith(tuple(f"{m}." for m in stack.norms)) for n in trained)
        c.text(x, top + 12, stack.name + (" (norms trained)" if own_norms else ""), font_weight="bold",
               font_size=12, data_trained="true" if own_norms else None)
        if stack.takes_prefix:
            _input(c, sites.get(f"{stack.name}.input"), x + LABEL, top + 18, scale, changes, plan)
        for i in range(stack.n_layers):
            _layer(c, stack, i, x, top + 40 + i * ROW, sites, trained, scale, changes)
        x += _stack_width(stack) + PAD


def _input(c, site, x, y, scale, changes, plan) -> None:
    tokens = []
    if plan.projector is not None:
        tokens.append(("projector", "#9ecae1", f"visual projector ({'trained' if plan.train_projector else 'frozen'})"))
    if site is not None:
        tokens.append((site.path, colour(site.trainable, *scale), None))
    for k, (name, fill, tip) in enumerate(tokens):
        for j in range(4):
            bx = x + k * 70 + j * 12
            if tip is None and j == 0:
                _site_element(c, site, "rect", fill, changes.get(site.path), x=bx, y=y, width=10 + 36, height=10)
                break
            c.add("rect", f"<title>{escape(tip)}</title>" if j == 0 else "", x=bx, y=y, width=10, height=10,
                  fill=fill, stroke="#333333", stroke_width=0.5, class_="projector" if j == 0 else None)


def _layer(c, stack, i, x, y, sites, trained, scale, changes) -> None:
    c.text(x, y + BOX_H / 2 + 4, f"[{i}]", font_size=11, fill="#555555")
    sx = x + LABEL
    module = stack.layer_module(i)
    c.add("line", x1=sx, y1=y + BOX_H / 2, x2=sx + _stack_width(stack) - LABEL, y2=y + BOX_H / 2,
          stroke="#888888", stroke_width=1.5, class_="residual")
    for sub in stack.sublayers:
        w = _sublayer_width(sub)
        bx = sx + GAP
        c.add("circle", cx=sx + 4, cy=y + BOX_H / 2, r=3, fill="#555555", class_="x-point", data_point=sub.x_point)
        c.add("circle", cx=bx + w + GAP - 4, cy=y + BOX_H / 2, r=3, fill="#ffffff", stroke="#555555",
              class_="h-point", data_point=sub.h_point)
        # base parameters of the sublayer's own modules made trainable (`train *.bias`, `train all`)
        owned = [n for n in trained if n.startswith(tuple(f"{module}.{o}." for o in sub.owns))]
        c.add("rect", f"<title>{len(owned)} base parameters trained</title>" if owned else "", x=bx, y=y, width=w,
              height=BOX_H, rx=4, fill="#f4f4f4", stroke="#2b8cbe" if owned else "#777777",
              stroke_dasharray="4 2" if owned else None, stroke_width=2 if owned else 1,
              data_trained=len(owned) if owned else None, class_="sublayer")
        c.text(bx + 4, y + BOX_H / 2 + 4, sub.name, font_size=10)
        chips = [("LN", None)] + [(role, role) for role in _chip_roles(sub)]
        for k, (name, role) in enumerate(chips):
            cx, cy = bx + 60 + k * (CHIP_W + 4), y + (BOX_H - CHIP_H) / 2
            paths = [p for p in sites if role and p.startswith(f"{stack.name}[{i}].{sub.name}.{role}")
                     and p[len(f"{stack.name}[{i}].{sub.name}.{role}"):] in ("",) + tuple(
                         f"[{lin.rsplit('.', 1)[-1]}]" for lin in sub.linears(role))]
            norm_trained = role is None and f"{module}.{sub.norm}.weight" in trained
            if paths:
                for j, p in enumerate(paths):  # a role backed by several linears: one slice each
                    part = CHIP_W / len(paths)
                    _site_element(c, sites[p], "rect", colour(sites[p].trainable, *scale), changes.get(p),
                                  x=cx + j * part, y=cy, width=part, height=CHIP_H)
            else:
                c.add("rect", x=cx, y=cy, width=CHIP_W, height=CHIP_H, fill="#ffffff",
                      stroke="#2b8cbe" if norm_trained else "#bbbbbb", stroke_width=2 if norm_trained else 0.8,
                      data_trained="true" if norm_trained else None, class_="norm" if role is None else "projection")
            c.text(cx + 3, cy + 9, name, font_size=7, fill="#333333", pointer_events="none")
        site = sites.get(f"{stack.name}[{i}].{sub.name}")
        if site is not None:  # on the residual stream, from X to H, under the sublayer
            _site_element(c, site, "rect", colour(site.trainable, *scale), changes.get(site.path),
                          x=sx + 4, y=y + BOX_H + 3, width=w + 2 * GAP - 8, height=7, rx=3)
        sx += w + 2 * GAP


def text_width(text: str, font_size: float) -> int:
    """An upper estimate of the width of ``text`` in DejaVu Sans / Arial: no font metrics are at
    hand (the SVG is rendered wherever it is opened), and their widest common glyphs stay under
    0.62 em, so items laid out by it never overlap."""
    return math.ceil(len(text) * font_size * 0.62)


LEGEND_ROW = 18


def legend(c: _Canvas, x: int, y: int, scale: tuple[int, int], diff: bool, right: int) -> int:
    """The colour scale, then the outline items flowed left to right after it, wrapping before
    ``right``; returns the y below the legend."""
    c.text(x, y, "trainable parameters per site", font_size=11, font_weight="bold")
    for k in range(40):
        low, high = math.log(max(scale[0], 1)), math.log(max(scale[1], 1))
        value = round(math.exp(low + k / 39 * (high - low)))
        c.add("rect", x=x + k * 5, y=y + 6, width=5, height=10, fill=colour(value, *scale))
    c.text(x, y + 28, f"{scale[0]:,}", font_size=10)
    c.text(x + 200, y + 28, f"{scale[1]:,}", font_size=10, text_anchor="end")
    items = [("#2b8cbe", "base parameters trained (train)"), ("#9ecae1", "visual projector tokens")]
    if diff:
        items += [(CHANGE_COLOURS[ADDED], "site added"), (CHANGE_COLOURS[REMOVED], "site removed"),
                  (CHANGE_COLOURS[CHANGED], "site changed")]
    left = x + 230
    cx, cy = left, y
    for fill, words in items:
        width = 18 + text_width(words, 10)
        if cx > left and cx + width > right:  # the next row, never over the previous item
            cx, cy = left, cy + LEGEND_ROW
        c.add("rect", x=cx, y=cy - 8, width=12, height=12, fill="#ffffff", stroke=fill, stroke_width=2.5,
              class_="legend-item")
        c.text(cx + 18, cy + 2, words, font_size=10, class_="legend-item")
        cx += width + 16
    return max(y + 34, cy + LEGEND_ROW)


def svg(designs: list, diff=None) -> str:
    """An SVG document of ``designs`` (``(title, plan, count)``), side by side; with ``diff``
    (two designs), each changed site outlined by its kind of change."""
    changes: list[dict] = [{} for _ in designs]
    if diff is not None:
        for ch in diff.site_changes:
            for path in ch.paths:
                if ch.change != ADDED:  # a site added in B has nothing to outline in A, and the reverse
                    changes[0][path] = ch.change
                if ch.change != REMOVED:
                    changes[1][path] = ch.change
    values = [s.trainable for _, plan, _ in designs for s in plan.sites] or [1]
    scale = (min(values), max(values))
    c = _Canvas()
    x = 0
    height = 0
    for (title, plan, count), change in zip(designs, changes):
        w, h = panel_size(plan.profile)
        draw_panel(c, plan, count, x, 0, scale, title, change)
        x += w
        height = max(height, h)
    width = max(x, 700)
    height = legend(c, PAD, height + 10, scale, diff is not None, right=width - PAD) + PAD
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif">')
    return "\n".join([head, f'<rect width="{width}" height="{height}" fill="#ffffff"/>', *c.parts, "</svg>"]) + "\n"


def html(designs: list, diff=None, title: str = "vlsurgery design") -> str:
    """The SVG inside a self-contained HTML page (no scripts, no external resources)."""
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{escape(title)}</title>\n"
            "<style>body{margin:16px;font-family:sans-serif} .site:hover{stroke:#000;stroke-width:2}</style>"
            f"</head>\n<body>\n{svg(designs, diff)}</body></html>\n")
