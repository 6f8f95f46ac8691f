"""Pictures of taxonomies and knowledge trees: self-contained HTML (inline SVG) and PNG.

HTML pages have no scripts and fetch nothing, so they open offline and can be pushed next to a dataset. PNGs use
matplotlib, an optional dependency (`pip install 'hf_prefsel[viz]'`). `Taxonomy.to_html`/`to_png` and
`KnowledgeTree.to_html`/`to_png` call these functions; the objects are read through their public attributes only,
so this module imports neither method package.
"""

from __future__ import annotations

import html
import math
import os
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import numpy as np

from ..errors import DependencyError

if TYPE_CHECKING:
    from ..tags.tree import KnowledgeTree
    from ..tap.taxonomy import Taxonomy
    from ..tap.taxonomy_nodes import AxisValue, TaxonomyNode

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")
"""Colours of the top-level branches, in order (Tableau 10)."""

_CJK_FONT_HINTS = ("Noto Sans CJK", "Noto Serif CJK", "Source Han", "WenQuanYi", "Droid Sans Fallback", "SimHei",
                   "Microsoft YaHei", "PingFang", "AR PL", "Unifont")


def _is_wide(ch: str) -> bool:
    """Whether a character is CJK-wide (drawn about twice as wide as a Latin one, and needs a CJK font)."""
    return ord(ch) > 0x2E80


def pyplot(purpose: str) -> Any:
    """`matplotlib.pyplot` on the file-only Agg backend; `DependencyError` naming `purpose` when it is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise DependencyError("matplotlib", "viz", purpose) from exc
    return plt


def _cjk_font_family() -> str | None:
    """An installed font family with CJK glyphs, or `None`."""
    from matplotlib import font_manager

    return next((f.name for f in font_manager.fontManager.ttflist if any(h in f.name for h in _CJK_FONT_HINTS)), None)


def _write(path: str | os.PathLike[str] | None, page: str) -> None:
    if path is not None:
        Path(path).write_text(page, encoding="utf-8")


# ---------------------------------------------------------------------------------------------- taxonomy


def _iter_subtree(node: "TaxonomyNode") -> Iterator["TaxonomyNode"]:
    yield node
    for c in node.children:
        yield from _iter_subtree(c)


def _taxonomy_layout(
    taxonomy: "Taxonomy", max_depth: int | None
) -> tuple[list[tuple["TaxonomyNode", int, float]], list[tuple[int, int]], int]:
    """Tree layout: (node, depth, y) rows, parent→child edges as row indices, and the number of leaf slots."""
    rows: list[tuple[TaxonomyNode, int, float]] = []
    edges: list[tuple[int, int]] = []
    slot = [0]

    def place(node: "TaxonomyNode", depth: int) -> int:
        index = len(rows)
        rows.append((node, depth, 0.0))
        kids = node.children if (max_depth is None or depth < max_depth) else []
        if not kids:
            y = float(slot[0])
            slot[0] += 1
        else:
            ys = []
            for child in kids:
                ci = place(child, depth + 1)
                edges.append((index, ci))
                ys.append(rows[ci][2])
            y = (ys[0] + ys[-1]) / 2
        rows[index] = (node, depth, y)
        return index

    for top in taxonomy.nodes:
        place(top, 1)
    return rows, edges, slot[0]


def _label(taxonomy: "Taxonomy", item: "TaxonomyNode | AxisValue", languages: Sequence[str]) -> str:
    """A node's or axis value's names in `languages`, without repeats, e.g. "Physics / 物理学"."""
    return " / ".join(dict.fromkeys(item.name(lang, taxonomy.languages) for lang in languages))


def taxonomy_html(
    taxonomy: "Taxonomy",
    path: str | os.PathLike[str] | None = None,
    *,
    languages: Sequence[str] | None = None,
    quotas: Mapping[str, int] | None = None,
    realized: Mapping[str, int] | None = None,
    max_depth: int | None = None,
    title: str | None = None,
) -> str:
    """The page of `Taxonomy.to_html` (its docstring describes the arguments)."""
    langs = list(languages or taxonomy.languages)
    rows, edges, n_slots = _taxonomy_layout(taxonomy, max_depth)
    depth = max(d for _, d, _ in rows)
    row_h, pad = 20, 12
    top_color = {n.id: PALETTE[i % len(PALETTE)] for i, n in enumerate(taxonomy.nodes)}
    node_top: dict[str, str] = {}
    for top in taxonomy.nodes:
        for n in _iter_subtree(top):
            node_top[n.id] = top.id
    texts: list[str] = []
    for node, _, _ in rows:
        extra = []
        if node.is_leaf and quotas is not None and node.id in quotas:
            extra.append(f"{realized.get(node.id, 0)}/{quotas[node.id]}" if realized is not None else str(quotas[node.id]))
        if node.weight != 1.0:
            extra.append(f"w={node.weight:g}")
        if node.quota is not None:
            extra.append(f"quota={node.quota}")
        texts.append(_label(taxonomy, node, langs) + (f" [{', '.join(extra)}]" if extra else ""))
    # column widths from the longest label at each depth (~7 px per Latin character at 12 px, 12 px per CJK one)
    col_w = [0.0] * (depth + 1)
    for (_, d, _), text in zip(rows, texts):
        col_w[d] = max(col_w[d], 40 + sum(12 if _is_wide(ch) else 7 for ch in text))
    x_at = [float(pad)] * (depth + 2)
    for d in range(1, depth + 1):
        x_at[d + 1] = x_at[d] + col_w[d]

    def xy(i: int) -> tuple[float, float]:
        _, d, y = rows[i]
        return x_at[d], pad + y * row_h + row_h / 2

    width = int(x_at[depth + 1] + pad)
    height = int(pad * 2 + max(1, n_slots) * row_h)
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           'font-family="sans-serif" font-size="12">']
    for a, b in edges:
        (x0, y0), (x1, y1) = xy(a), xy(b)
        xm = x1 - 14
        svg.append(f'<path d="M{x0 + 6:.1f},{y0:.1f} H{xm:.1f} V{y1:.1f} H{x1:.1f}" fill="none" stroke="#bbb"/>')
    for i, ((node, d, _), text) in enumerate(zip(rows, texts)):
        x, y = xy(i)
        color = top_color[node_top[node.id]]
        short = node.is_leaf and quotas is not None and realized is not None and realized.get(node.id, 0) < quotas.get(node.id, 0)
        tooltip = " › ".join(_label(taxonomy, n, langs) for n in taxonomy.path(node.id)) + f" (id: {node.id})"
        svg.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{color}"><title>{html.escape(tooltip)}</title></circle>')
        weight = "bold" if d == 1 else "normal"
        fill = ' fill="#c0392b"' if short else ""
        svg.append(f'<text x="{x + 8:.1f}" y="{y + 4:.1f}" font-weight="{weight}"{fill}>{html.escape(text)}'
                   f"<title>{html.escape(tooltip)}</title></text>")
    svg.append("</svg>")
    axes_html = ""
    if taxonomy.axes:
        parts = []
        for axis in taxonomy.axes:
            vals = ", ".join(html.escape(f"{_label(taxonomy, v, langs)}" + (f" (w={v.weight:g})" if v.weight != 1 else ""))
                             for v in axis.values)
            parts.append(f"<li><b>{html.escape(' / '.join(axis.names.get(l, axis.id) for l in langs))}</b>: {vals}</li>")
        axes_html = "<h2>Axes (crossed with every leaf)</h2><ul>" + "".join(parts) + "</ul>"
    heading = title or f"Taxonomy: {taxonomy.name}"
    n_nodes = sum(1 for _ in taxonomy.iter_nodes())
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(heading)}</title><style>body{{font-family:sans-serif;margin:1.5em}}</style></head><body>"
        f"<h1>{html.escape(heading)}</h1><p>{n_nodes} nodes, {taxonomy.n_leaves} leaves, languages "
        f"{html.escape(', '.join(taxonomy.languages))}.{' Leaves show generated/quota; short leaves are red.' if realized is not None else ''}</p>"
        + axes_html + "<h2>Tree</h2>" + "".join(svg) + "</body></html>"
    )
    _write(path, page)
    return page


def taxonomy_png(
    taxonomy: "Taxonomy",
    path: str | os.PathLike[str],
    *,
    languages: Sequence[str] | None = None,
    max_depth: int | None = None,
    dpi: int = 110,
) -> list[str]:
    """The picture of `Taxonomy.to_png`; returns the languages drawn (CJK ones are left out without a CJK font)."""
    plt = pyplot("Taxonomy.to_png")
    langs = list(languages or taxonomy.languages)
    rows, edges, n_slots = _taxonomy_layout(taxonomy, max_depth)
    font_props: dict[str, Any] = {}

    def needs_cjk(lang: str) -> bool:
        return any(any(_is_wide(ch) for ch in n.name(lang, taxonomy.languages)) for n, _, _ in rows)

    cjk = [lang for lang in langs if needs_cjk(lang)]
    if cjk:
        family = _cjk_font_family()
        if family is not None:
            font_props["fontfamily"] = [family, "DejaVu Sans"]
        else:
            import warnings

            warnings.warn(
                f"No CJK font is installed, so the {cjk} labels are left out of {path}; install one (e.g. Debian's "
                "fonts-noto-cjk) or use to_html().", stacklevel=3,
            )
            langs = [lang for lang in langs if lang not in cjk] or [taxonomy.languages[0]]
    labels = [_label(taxonomy, node, langs) for node, _, _ in rows]
    depth = max(d for _, d, _ in rows)
    # column widths from the longest label at each depth (~0.075 inch per character at 8 pt; CJK twice that)
    width_of = [0.0] * (depth + 1)
    for (node, d, _), label in zip(rows, labels):
        chars = sum(2 if _is_wide(ch) else 1 for ch in label)
        width_of[d] = max(width_of[d], 0.3 + 0.072 * chars)
    x_at = [0.0] * (depth + 2)
    for d in range(1, depth + 1):
        x_at[d + 1] = x_at[d] + width_of[d]
    fig = plt.figure(figsize=(x_at[depth + 1] + 0.4, max(1.5, 0.22 * n_slots + 0.5)))
    ax = fig.add_axes((0, 0, 1, 1))
    cmap = plt.get_cmap("tab10")
    top_index = {}
    for i, top in enumerate(taxonomy.nodes):
        for n in _iter_subtree(top):
            top_index[n.id] = i
    for a, b in edges:
        (_, d0, y0), (_, d1, y1) = rows[a], rows[b]
        xm = x_at[d1] - 0.12
        ax.plot([x_at[d0] + 0.1, xm, xm, x_at[d1]], [-y0, -y0, -y1, -y1], color="#bbbbbb", linewidth=0.8, zorder=1)
    for (node, d, y), label in zip(rows, labels):
        ax.scatter([x_at[d]], [-y], s=14, color=cmap(top_index[node.id] % 10), zorder=2)
        ax.text(x_at[d] + 0.06, -y, label, va="center", fontsize=8, fontweight="bold" if d == 1 else "normal",
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5}, zorder=3, **font_props)
    ax.set_xlim(-0.2, x_at[depth + 1] + 0.2)
    ax.set_ylim(-n_slots + 0.4, 0.6)
    ax.set_axis_off()
    fig.savefig(str(path), dpi=dpi)
    plt.close(fig)
    return langs


# ---------------------------------------------------------------------------------------------- knowledge tree


def _sunburst_arcs(tree: "KnowledgeTree", max_depth: int) -> list[tuple[int, int, float, float]]:
    """(node, depth, start angle, end angle) for nodes down to `max_depth`, angles ∝ leaf counts."""
    counts = tree.leaf_counts().astype(np.float64)
    arcs: list[tuple[int, int, float, float]] = []
    stack = [(tree.root, 0.0, 2 * math.pi)]
    while stack:
        node, a0, a1 = stack.pop()
        d = int(tree.depths[node])
        arcs.append((node, d, a0, a1))
        if d >= max_depth:
            continue
        kids = tree.children(node)
        if len(kids) == 0:
            continue
        kids = kids[np.argsort(-counts[kids], kind="stable")]
        total = counts[kids].sum()
        a = a0
        for c in kids.tolist():
            span = (a1 - a0) * counts[c] / total
            stack.append((c, a, a + span))
            a += span
    return arcs


def _root_children_by_size(tree: "KnowledgeTree") -> list[int]:
    """The root's children, most concepts first: the order that gives the top-level branches their colours."""
    kids = tree.children(tree.root)
    return kids[np.argsort(-tree.leaf_counts()[kids], kind="stable")].tolist()


def knowledge_tree_html(
    tree: "KnowledgeTree",
    path: str | os.PathLike[str] | None = None,
    *,
    max_depth: int = 3,
    max_children: int = 30,
    title: str = "Knowledge tree",
) -> str:
    """The page of `KnowledgeTree.to_html`: an SVG sunburst plus an indented, collapsible tree."""
    counts = tree.leaf_counts()
    depth_shown = max(1, min(max_depth, tree.depth))
    ring = 360.0 / (2 * (depth_shown + 1))
    cx = cy = 380.0
    top_color = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(_root_children_by_size(tree))}
    svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="760" height="760" viewBox="0 0 760 760">']
    for node, d, a0, a1 in _sunburst_arcs(tree, depth_shown):
        if d == 0:
            svg.append(f'<circle cx="{cx}" cy="{cy}" r="{ring:.1f}" fill="#eee"><title>{html.escape(tree.names[node])} ({counts[node]:,} concepts)</title></circle>')
            continue
        top = tree.path(node)[-2]
        r0, r1 = ring * d, ring * (d + 1)
        if a1 - a0 >= 2 * math.pi - 1e-9:
            a1 = a0 + 2 * math.pi - 1e-6
        large = 1 if a1 - a0 > math.pi else 0
        p = [(cx + r * math.sin(a), cy - r * math.cos(a)) for r, a in ((r1, a0), (r1, a1), (r0, a1), (r0, a0))]
        dpath = (f"M{p[0][0]:.2f},{p[0][1]:.2f} A{r1:.1f},{r1:.1f} 0 {large} 1 {p[1][0]:.2f},{p[1][1]:.2f} "
                 f"L{p[2][0]:.2f},{p[2][1]:.2f} A{r0:.1f},{r0:.1f} 0 {large} 0 {p[3][0]:.2f},{p[3][1]:.2f} Z")
        opacity = max(0.35, 1.0 - 0.2 * (d - 1))
        label = " › ".join(reversed(tree.path_names(node)[:-1]))
        svg.append(f'<path d="{dpath}" fill="{top_color.get(top, "#999")}" fill-opacity="{opacity:.2f}" stroke="#fff" stroke-width="0.6">'
                   f"<title>{html.escape(label)} ({counts[node]:,} concepts)</title></path>")
        if d == 1 and a1 - a0 > 0.25:
            am = (a0 + a1) / 2
            tx, ty = cx + (r0 + r1) / 2 * math.sin(am), cy - (r0 + r1) / 2 * math.cos(am)
            svg.append(f'<text x="{tx:.1f}" y="{ty:.1f}" font-size="10" text-anchor="middle" pointer-events="none">'
                       f"{html.escape(tree.names[node][:22])}</text>")
    svg.append("</svg>")

    def li(node: int, budget: list[int]) -> str:
        kids = tree.children(node)
        label = f"{html.escape(tree.names[node])} <small>({counts[node]:,})</small>"
        if len(kids) == 0 or budget[0] <= 0:
            return f"<li>{label}</li>"
        budget[0] -= 1
        kids = kids[np.argsort(-counts[kids], kind="stable")]
        inner = "".join(li(c, budget) for c in kids[:max_children].tolist())
        more = f"<li><i>… {len(kids) - max_children:,} more</i></li>" if len(kids) > max_children else ""
        open_attr = " open" if tree.depths[node] < 1 else ""
        return f"<li><details{open_attr}><summary>{label}</summary><ul>{inner}{more}</ul></details></li>"

    sizes = ", ".join(f"depth {d}: {c:,}" for d, c in sorted(tree.level_sizes().items()))
    body = li(tree.root, [2000])  # expand at most 2000 inner nodes to keep the page light
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;margin:2em}}ul{{list-style:none;padding-left:1.2em}}"
        "small{color:#777}summary{cursor:pointer}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{tree.n_leaves:,} concepts, {tree.n_nodes:,} nodes, depth {tree.depth} ({sizes}). "
        "Hover a sector for its path; sector angles are proportional to the number of concepts.</p>"
        + "".join(svg)
        + f"<h2>Tree</h2><ul>{body}</ul></body></html>"
    )
    _write(path, page)
    return page


def knowledge_tree_png(tree: "KnowledgeTree", path: str | os.PathLike[str], *, max_depth: int = 3, dpi: int = 120) -> None:
    """The sunburst of `KnowledgeTree.to_png`."""
    plt = pyplot("KnowledgeTree.to_png")
    depth_shown = max(1, min(max_depth, tree.depth))
    cmap = plt.get_cmap("tab10")
    top_color = {c: cmap(i % 10) for i, c in enumerate(_root_children_by_size(tree))}
    fig = plt.figure(figsize=(8, 8))
    ax = fig.add_subplot(projection="polar")
    ax.set_theta_zero_location("N")
    ax.set_theta_direction(-1)
    for node, d, a0, a1 in _sunburst_arcs(tree, depth_shown):
        if d == 0:
            ax.bar(0, 1, width=2 * math.pi, bottom=0, color="#eeeeee", edgecolor="white")
            continue
        color = top_color.get(tree.path(node)[-2], (0.6, 0.6, 0.6, 1))
        ax.bar((a0 + a1) / 2, 1, width=a1 - a0, bottom=d, color=color, alpha=max(0.35, 1 - 0.2 * (d - 1)), edgecolor="white", linewidth=0.4)
        if d == 1 and a1 - a0 > 0.25:
            label = "\n".join(textwrap.wrap(tree.names[node], 16)[:3])
            ax.text((a0 + a1) / 2, d + 0.5, label, ha="center", va="center", fontsize=7)
    ax.set_axis_off()
    ax.set_title(f"{tree.n_leaves:,} concepts, depth {tree.depth}")
    fig.savefig(str(path), dpi=dpi, bbox_inches="tight")
    plt.close(fig)


__all__ = ["PALETTE", "knowledge_tree_html", "knowledge_tree_png", "pyplot", "taxonomy_html", "taxonomy_png"]
