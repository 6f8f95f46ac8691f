"""How results look: chart tables for Gradio's native plots, and trees/taxonomies as self-contained HTML.

Charts are plain pandas frames with the columns `label`, `value`, `series`, so one plot component can show any of
them. Trees are drawn as an SVG treemap (hover a box for its path and counts) above a collapsible outline; both
are plain HTML with no scripts and no network, so they render inside `gr.HTML` and in a downloaded page alike.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")
SELECTED, NOT_SELECTED = "selected", "not selected"


@dataclass
class Chart:
    """One bar chart: a frame with `label`, `value`, `series` and how to title it."""

    title: str
    frame: Any  # pandas.DataFrame
    x_title: str = ""
    y_title: str = ""
    caption: str = ""
    order: list[str] | None = None
    colors: dict[str, str] | None = None


def bar_chart(title: str, items: Sequence[tuple[str, float, str]], *, x_title: str = "", y_title: str = "",
              caption: str = "", keep_order: bool = True, colors: dict[str, str] | None = None) -> Chart:
    """A chart from `(label, value, series)` triples; labels keep their first-seen order when `keep_order`."""
    import pandas as pd

    frame = pd.DataFrame([{"label": str(l), "value": float(v), "series": str(s)} for l, v, s in items],
                         columns=["label", "value", "series"])
    order = list(dict.fromkeys(frame["label"])) if keep_order else None
    return Chart(title, frame, x_title, y_title, caption, order, colors)


def short_label(text: str, width: int = 28) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def coverage_chart(title: str, groups: Sequence[tuple[str, int, int]], *, x_title: str, caption: str = "",
                   y_title: str = "rows", names: tuple[str, str] = (SELECTED, NOT_SELECTED)) -> Chart:
    """Stacked bars per group: the chosen part on top of the rest, so bar height = pool size (sizes and coverage)."""
    items: list[tuple[str, float, str]] = []
    for label, pool, chosen in groups:
        items.append((label, chosen, names[0]))
        items.append((label, max(pool - chosen, 0), names[1]))
    return bar_chart(title, items, x_title=x_title, y_title=y_title, caption=caption,
                     colors={names[0]: "#e15759", names[1]: "#bab0ac"})


def histogram_chart(title: str, values: np.ndarray, kept: np.ndarray, *, bins: int = 20, x_title: str = "",
                    caption: str = "", y_title: str = "pairs", names: tuple[str, str] = ("kept", "dropped")) -> Chart:
    """A histogram whose bars are split into kept and dropped rows, so the selection cut shows as a colour edge."""
    values = np.asarray(values, dtype=float)
    kept = np.asarray(kept, dtype=bool)
    finite = np.isfinite(values)
    lo, hi = (float(values[finite].min()), float(values[finite].max())) if finite.any() else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    which = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1)
    items = []
    for b in range(bins):
        label = f"{(edges[b] + edges[b + 1]) / 2:+.2f}"
        in_bin = (which == b) & finite
        items.append((label, int(np.sum(in_bin & kept)), names[0]))
        items.append((label, int(np.sum(in_bin & ~kept)), names[1]))
    return bar_chart(title, items, x_title=x_title, y_title=y_title, caption=caption,
                     colors={names[0]: "#59a14f", names[1]: "#bab0ac"})


# ------------------------------------------------------------------------------------------------ trees


@dataclass
class TreeNode:
    """A node of a tree to draw: `size` rows (or concepts) under it, `selected` of them chosen."""

    name: str
    size: float = 0.0
    selected: float = 0.0
    children: list["TreeNode"] = field(default_factory=list)
    note: str = ""

    def total(self) -> float:
        return self.size if not self.children else sum(c.total() for c in self.children) or self.size


def squarify(values: Sequence[float], x: float, y: float, w: float, h: float) -> list[tuple[float, float, float, float]]:
    """Squarified treemap (Bruls, Huizing & van Wijk): rectangles for `values` (sorted descending) filling the box."""
    total = float(sum(values))
    if total <= 0 or w <= 0 or h <= 0:
        return [(x, y, 0.0, 0.0) for _ in values]
    areas = [v * w * h / total for v in values]
    rects: list[tuple[float, float, float, float]] = []

    def worst(row: list[float], side: float) -> float:
        s = sum(row)
        return max(max(row) * side * side / (s * s), s * s / (side * side * min(row))) if s > 0 and min(row) > 0 else math.inf

    i = 0
    while i < len(areas):
        side = min(w, h)
        row = [areas[i]]
        j = i + 1
        while j < len(areas) and worst(row + [areas[j]], side) <= worst(row, side):
            row.append(areas[j])
            j += 1
        s = sum(row)
        if w >= h:  # a column on the left
            cw = s / h if h else 0.0
            cy = y
            for a in row:
                ch = a / cw if cw else 0.0
                rects.append((x, cy, cw, ch))
                cy += ch
            x, w = x + cw, w - cw
        else:  # a row on top
            rh = s / w if w else 0.0
            cx = x
            for a in row:
                rw = a / rh if rh else 0.0
                rects.append((cx, y, rw, rh))
                cx += rw
            y, h = y + rh, h - rh
        i = j
    return rects


def _fill(node: TreeNode, color: str, show_selection: bool, depth: int) -> tuple[str, float]:
    if show_selection:
        share = node.selected / node.size if node.size else 0.0
        return color, 0.18 + 0.8 * min(1.0, share)
    return color, max(0.35, 0.95 - 0.2 * depth)


def treemap_html(root: TreeNode, *, title: str, max_depth: int = 2, width: int = 900, height: int = 440,
                 show_selection: bool = True, unit: str = "rows", max_children: int = 40, outline_depth: int = 3,
                 selected_word: str = "selected") -> str:
    """An SVG treemap of `root` (hover a box for its path and counts) and a collapsible outline below it."""
    svg: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{html.escape(title)}" style="max-width:{width}px;font-family:sans-serif">'
    ]

    def draw(node: TreeNode, x: float, y: float, w: float, h: float, depth: int, color: str, path: list[str]) -> None:
        kids = sorted((c for c in node.children if c.total() > 0), key=lambda c: -c.total())[:max_children]
        rects = squarify([c.total() for c in kids], x, y, w, h)
        for k, (child, (cx, cy, cw, ch)) in enumerate(zip(kids, rects)):
            if cw < 1 or ch < 1:
                continue
            c = PALETTE[k % len(PALETTE)] if depth == 0 else color
            fill, opacity = _fill(child, c, show_selection, depth)
            where = " › ".join([*path, child.name])
            sel = (f", {child.selected:,.0f} {selected_word} ({child.selected / child.size:.0%})"
                   if show_selection and child.size else "")
            note = f" — {child.note}" if child.note else ""
            svg.append(
                f'<g><title>{html.escape(where)}: {child.size:,.0f} {unit}{sel}{html.escape(note)}</title>'
                f'<rect x="{cx:.1f}" y="{cy:.1f}" width="{cw:.1f}" height="{ch:.1f}" fill="{fill}" '
                f'fill-opacity="{opacity:.2f}" stroke="#fff" stroke-width="{2 if depth == 0 else 1}"/>'
            )
            label_room = cw > 40 and ch > 14
            if label_room:
                chars = max(3, int(cw / 6.4))
                svg.append(f'<text x="{cx + 3:.1f}" y="{cy + 11:.1f}" font-size="{11 if depth == 0 else 9}" '
                           f'font-weight="{600 if depth == 0 else 400}" fill="#222" pointer-events="none">'
                           f"{html.escape(short_label(child.name, chars))}</text>")
            svg.append("</g>")
            if depth + 1 < max_depth and child.children and cw > 24 and ch > 30:
                pad_top = 15 if label_room else 2
                draw(child, cx + 2, cy + pad_top, cw - 4, ch - pad_top - 2, depth + 1, c, [*path, child.name])

    draw(root, 0, 0, width, height, 0, PALETTE[0], [])
    svg.append("</svg>")

    def li(node: TreeNode, depth: int) -> str:
        sel = f" · {node.selected:,.0f} {selected_word}" if show_selection and node.size else ""
        note = f" <i>{html.escape(node.note)}</i>" if node.note else ""
        label = f"{html.escape(node.name)} <small>({node.size:,.0f} {unit}{sel})</small>{note}"
        kids = sorted(node.children, key=lambda c: -c.total())
        if not kids or depth >= outline_depth:
            return f"<li>{label}</li>"
        inner = "".join(li(c, depth + 1) for c in kids[:max_children])
        more = f"<li><i>… {len(kids) - max_children:,} more</i></li>" if len(kids) > max_children else ""
        opened = " open" if depth == 0 else ""
        return (f"<li><details{opened}><summary>{label}</summary>"
                f'<ul style="list-style:none;padding-left:1.1em">{inner}{more}</ul></details></li>')

    legend = (f"Box area = number of {unit}; darker = larger share {selected_word}. " if show_selection
              else "Box area = number of " + unit + ". ") + "Hover a box for its path and counts."
    return (
        f'<div class="hfp-tree"><div style="font-weight:600;margin:4px 0">{html.escape(title)}</div>'
        f'<div style="color:#666;font-size:0.9em;margin-bottom:4px">{legend}</div>'
        + "".join(svg)
        + '<div style="margin-top:8px;max-height:360px;overflow:auto"><ul style="list-style:none;padding-left:0.6em">'
        + li(root, 0) + "</ul></div></div>"
    )


def empty_html(message: str) -> str:
    return f'<div style="color:#666;padding:1em">{html.escape(message)}</div>'
