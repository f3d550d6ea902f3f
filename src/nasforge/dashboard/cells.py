"""Architecture diagrams: a space's graph view (``space.graph`` / ``space.cells``) drawn as an SVG DAG.

The layout is a small layered (Sugiyama-style) one: each node goes to the layer of its longest
path from a source, layers are columns from left to right, nodes within a column are ordered by
the mean position of their neighbours (a few sweeps, to cut crossings), and edges are cubic
curves with arrow heads. Every label is XML-escaped; the SVG holds no script and no link.
"""

from __future__ import annotations

import html
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: pixels per character of the 12 px monospace label font, and the node box
CHAR_W, NODE_H, PAD_X = 7.3, 26, 10
COL_GAP, ROW_GAP, MARGIN, TITLE_H = 46, 14, 12, 22
MAX_LABEL = 32
PALETTE = ("#8dd3c7", "#ffffb3", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69", "#fccde5", "#bc80bd",
           "#ccebc5", "#ffed6f", "#a6cee3")
ENDS = "#d9d9d9"


@dataclass
class Layout:
    """Node positions of one graph: ``x``/``y`` of each box's top-left corner, its width, the
    layer of each node, and the total size."""

    labels: list[str]
    edges: list[tuple[int, int]]
    layer: list[int]
    x: list[float]
    y: list[float]
    width: list[float]
    size: tuple[float, float]


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"


def layered_layout(adj: Any, labels: Sequence[Any]) -> Layout:
    """A left-to-right layered layout of the DAG with adjacency matrix ``adj`` (``adj[i, j]``
    non-zero: an edge i -> j). A cycle (which a space's graph should not have) is broken by
    ignoring the edges that close it."""
    a = np.asarray(adj)
    n = len(labels)
    if a.shape != (n, n):
        raise ValueError(f"adjacency of shape {a.shape} for {n} labels")
    edges = [(int(i), int(j)) for i, j in zip(*np.nonzero(a)) if i != j]
    preds: list[list[int]] = [[] for _ in range(n)]
    succs: list[list[int]] = [[] for _ in range(n)]
    for i, j in edges:
        preds[j].append(i)
        succs[i].append(j)
    # topological order (Kahn); nodes left on a cycle follow in index order
    indeg = [len(p) for p in preds]
    ready = [i for i in range(n) if indeg[i] == 0]
    topo: list[int] = []
    while ready:
        ready.sort()
        i = ready.pop(0)
        topo.append(i)
        for j in succs[i]:
            indeg[j] -= 1
            if indeg[j] == 0:
                ready.append(j)
    topo += [i for i in range(n) if i not in set(topo)]
    pos_topo = {v: k for k, v in enumerate(topo)}
    forward = [(i, j) for i, j in edges if pos_topo[i] < pos_topo[j]]
    layer = [0] * n
    for j in topo:
        ps = [i for i, jj in forward if jj == j]
        layer[j] = 1 + max((layer[i] for i in ps), default=-1)
    # a sink with no successors but the last node: keep the graph's output in the last column
    if n > 1 and not succs[n - 1]:
        layer[n - 1] = max(layer[n - 1], max(layer))
    n_layers = max(layer) + 1 if n else 0
    cols: list[list[int]] = [[] for _ in range(n_layers)]
    for v in sorted(range(n), key=lambda v: (layer[v], v)):
        cols[layer[v]].append(v)
    # order within columns: barycentre sweeps, left to right then right to left
    rank = {v: k for col in cols for k, v in enumerate(col)}
    for sweep in range(4):
        rng = range(1, n_layers) if sweep % 2 == 0 else range(n_layers - 2, -1, -1)
        for c in rng:
            def bary(v: int) -> float:
                nb = [u for u, w in forward if w == v] if sweep % 2 == 0 else [w for u, w in forward if u == v]
                return float(np.mean([rank[u] for u in nb])) if nb else float(rank[v])
            cols[c].sort(key=lambda v: (bary(v), v))
            for k, v in enumerate(cols[c]):
                rank[v] = k
    shown = [_short(str(lab)) for lab in labels]
    width = [len(s) * CHAR_W + 2 * PAD_X for s in shown]
    col_w = [max((width[v] for v in col), default=0.0) for col in cols]
    tallest = max((len(col) for col in cols), default=0)
    height = tallest * NODE_H + max(0, tallest - 1) * ROW_GAP
    x = [0.0] * n
    y = [0.0] * n
    left = float(MARGIN)
    for c, col in enumerate(cols):
        h = len(col) * NODE_H + max(0, len(col) - 1) * ROW_GAP
        top = MARGIN + (height - h) / 2.0
        for k, v in enumerate(col):
            x[v] = left + (col_w[c] - width[v]) / 2.0
            y[v] = top + k * (NODE_H + ROW_GAP)
        left += col_w[c] + COL_GAP
    total_w = left - COL_GAP + MARGIN if cols else 2.0 * MARGIN
    return Layout([str(s) for s in labels], edges, layer, x, y, width, (total_w, height + 2.0 * MARGIN))


def _colour(label: str, end: bool) -> str:
    if end:
        return ENDS
    return PALETTE[zlib.crc32(label.encode("utf-8", "surrogatepass")) % len(PALETTE)]


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _graph_svg(lay: Layout, dx: float, dy: float, uid: str) -> list[str]:
    out: list[str] = []
    n = len(lay.labels)
    for i, j in lay.edges:
        x1, y1 = dx + lay.x[i] + lay.width[i], dy + lay.y[i] + NODE_H / 2
        x2, y2 = dx + lay.x[j], dy + lay.y[j] + NODE_H / 2
        if x2 <= x1:  # an edge that does not go right (a cycle): loop around below
            mid = max(y1, y2) + NODE_H
            d = f"M{x1:.1f},{y1:.1f} C{x1 + 30:.1f},{mid:.1f} {x2 - 30:.1f},{mid:.1f} {x2:.1f},{y2:.1f}"
        else:
            c = (x2 - x1) / 2.0
            d = f"M{x1:.1f},{y1:.1f} C{x1 + c:.1f},{y1:.1f} {x2 - c:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
        out.append(f'<path class="edge" d="{d}" fill="none" stroke="#555" stroke-width="1.3" '
                   f'marker-end="url(#arrow-{uid})"/>')
    for v in range(n):
        label = lay.labels[v]
        end = v == 0 or v == n - 1 or label in ("input", "output")
        x, y, w = dx + lay.x[v], dy + lay.y[v], lay.width[v]
        out.append(f'<g class="node" data-node="{v}"><title>{_esc(f"node {v}: {label}")}</title>'
                   f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{NODE_H}" rx="6" '
                   f'fill="{_colour(label, end)}" stroke="#333" stroke-width="1"/>'
                   f'<text x="{x + w / 2:.1f}" y="{y + NODE_H / 2 + 4:.1f}" text-anchor="middle">'
                   f'{_esc(_short(label))}</text></g>')
    return out


def render_svg(graphs: Sequence[tuple[Any, Sequence[Any]]], titles: Sequence[str] = (), uid: str = "c") -> str:
    """One SVG with each ``(adjacency, labels)`` graph laid out left to right, stacked vertically
    under its title (``titles[k]``, may be empty)."""
    lays = [layered_layout(adj, labels) for adj, labels in graphs]
    uid = "".join(ch for ch in uid if ch.isalnum()) or "c"
    body: list[str] = []
    top = 0.0
    width = max((lay.size[0] for lay in lays), default=2.0 * MARGIN)
    for k, lay in enumerate(lays):
        title = titles[k] if k < len(titles) else ""
        if title:
            body.append(f'<text class="title" x="{MARGIN}" y="{top + 16:.1f}" font-weight="bold">{_esc(title)}</text>')
            top += TITLE_H
        body += _graph_svg(lay, 0.0, top, uid)
        top += lay.size[1]
    height = max(top, 2.0 * MARGIN)
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="cell-diagram" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.1f} {height:.1f}" font-family="monospace" font-size="12">'
            f'<defs><marker id="arrow-{uid}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
            f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>')
    return head + "".join(body) + "</svg>"


__all__ = ["Layout", "layered_layout", "render_svg"]
