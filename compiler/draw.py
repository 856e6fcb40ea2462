"""Pictures of a checked net: DOT text, or SVG/PNG drawn with matplotlib (no graphviz binary
needed).  Layers are boxes labelled with op and output shape; data fields are ellipses."""
from __future__ import annotations

import networkx as nx

from .graph import FIELD

_FAMILY_COLOURS = {"dense": "#8ecae6", "conv": "#ffb703", "pool": "#fb8500",
                   "activation": "#b7e4c7", "norm": "#e9c46a", "loss": "#e76f51",
                   "connection": "#d9d9d9", "rbm": "#cdb4db", "recurrent": "#a2d2ff"}


def _label(g: nx.DiGraph, node: str) -> str:
    layer = g.nodes[node].get("layer")
    if layer is None:
        return node
    shape = "x".join(map(str, layer.out.shape)) or "scalar"
    return f"{node}\n{layer.op} → {shape}"


def _colour(g, node) -> str:
    from .ops import OPS
    layer = g.nodes[node].get("layer")
    return _FAMILY_COLOURS.get(OPS[layer.op].family, "#ffffff") if layer else "#ffffff"


def to_dot(g: nx.DiGraph, name: str) -> str:
    lines = [f'digraph "{name}" {{', "  rankdir=TB;", '  node [fontname="Helvetica"];']
    for node in nx.topological_sort(g):
        label = _label(g, node).replace('"', '\\"').replace("\n", "\\n")
        if g.nodes[node]["kind"] == FIELD:
            lines.append(f'  "{node}" [shape=ellipse, label="{label}"];')
        else:
            lines.append(f'  "{node}" [shape=box, style=filled, fillcolor="{_colour(g, node)}", '
                         f'label="{label}"];')
    for u, v in g.edges:
        lines.append(f'  "{u}" -> "{v}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw(g: nx.DiGraph, name: str, path: str, fmt: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    layers = list(nx.topological_generations(g))
    pos = {}
    for depth, nodes in enumerate(layers):
        for i, node in enumerate(sorted(nodes)):
            pos[node] = ((i - (len(nodes) - 1) / 2) * 2.6, -depth * 1.2)
    width = max(4.0, 2.6 * max(len(n) for n in layers) + 1)
    fig, ax = plt.subplots(figsize=(width, 1.2 * len(layers) + 1))
    for u, v in g.edges:
        ax.annotate("", xy=pos[v], xytext=pos[u],
                    arrowprops=dict(arrowstyle="->", color="#555555", shrinkA=14, shrinkB=14))
    for node, (x, y) in pos.items():
        is_field = g.nodes[node]["kind"] == FIELD
        ax.text(x, y, _label(g, node), ha="center", va="center", fontsize=8,
                bbox=dict(boxstyle="round,pad=0.4" if is_field else "square,pad=0.4",
                          fc=_colour(g, node), ec="#333333"))
    ax.set_title(f"net {name}")
    ax.axis("off")
    xs = [p[0] for p in pos.values()] or [0]
    ys = [p[1] for p in pos.values()] or [0]
    ax.set_xlim(min(xs) - 1.5, max(xs) + 1.5)
    ax.set_ylim(min(ys) - 0.8, max(ys) + 0.8)
    fig.savefig(path, format=fmt, bbox_inches="tight")
    plt.close(fig)
