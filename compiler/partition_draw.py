"""Pictures of a partitioned graph: DOT text, or SVG/PNG drawn with matplotlib (no graphviz
binary needed).  Layers are coloured by the worker that computes them, inserted connection
layers (slice, split, concate, bridges) are dashed, bridges are joined by a red dashed
arrow across workers, and each layer copy names the servers holding its params."""
from __future__ import annotations

import networkx as nx

from .partition_types import payloads

WORKER_COLOURS = ("#8ecae6", "#ffb703", "#b7e4c7", "#cdb4db", "#f4a261", "#a2d2ff",
                  "#e9c46a", "#ffafcc")
_SHAPES = {"slice": "trapezium", "split": "invtrapezium", "concate": "invhouse",
           "bridge_src": "cds", "bridge_dst": "cds", "field": "ellipse", "layer": "box"}


def worker_colour(worker: int | None) -> str:
    return "#ffffff" if worker is None else WORKER_COLOURS[worker % len(WORKER_COLOURS)]


def servers_of(g: nx.DiGraph) -> dict[str, list[int]]:
    """Param part name → the servers of the group holding its slices."""
    out: dict[str, list[int]] = {}
    for s in g.graph.get("param_slices", ()):
        if s.server not in out.setdefault(s.part, []):
            out[s.part].append(s.server)
    return out


def label(g: nx.DiGraph, n, servers=None) -> str:
    servers = servers_of(g) if servers is None else servers
    if n.kind == "field":
        return n.name
    shape = "x".join(map(str, n.shape)) or "scalar"
    what = n.layer.op if n.kind == "layer" else n.kind
    lines = [n.name, f"{what} {shape}"]
    for p in n.params:
        where = ",".join(f"s{k}" for k in servers.get(p.name, ()))
        lines.append(f"{p.name} -> {where or '?'}")
    return "\n".join(lines)


def to_dot(g: nx.DiGraph, name: str | None = None) -> str:
    name = name or g.graph.get("net", "net")
    servers = servers_of(g)
    nodes = payloads(g)
    lines = [f'digraph "{name}" {{', "  rankdir=TB;", '  node [fontname="Helvetica"];']
    workers = sorted({n.worker for n in nodes if n.worker is not None})
    for w in workers:
        lines.append(f'  subgraph "cluster_worker{w}" {{')
        lines.append(f'    label="worker {w}"; color="{worker_colour(w)}";')
        for n in nodes:
            if n.worker == w:
                lines.append("    " + _dot_node(g, n, servers))
        lines.append("  }")
    for n in nodes:
        if n.worker is None:
            lines.append("  " + _dot_node(g, n, servers))
    for u, v in g.edges:
        bridge = g.nodes[u]["kind"] == "bridge_src"
        style = ' [style=dashed, color="#d62828", label="bridge"]' if bridge else ""
        lines.append(f'  "{_q(u)}" -> "{_q(v)}"{style};')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _q(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def _dot_node(g, n, servers) -> str:
    text = _q(label(g, n, servers)).replace("\n", "\\n")
    style = "filled,dashed" if n.inserted else "filled"
    return (f'"{_q(n.name)}" [shape={_SHAPES[n.kind]}, style="{style}", '
            f'fillcolor="{worker_colour(n.worker)}", label="{text}"];')


def _positions(nodes, g) -> dict:
    depth = {}
    for n in nodes:
        preds = list(g.predecessors(n.name))
        depth[n.name] = 0 if not preds else 1 + max(depth[p] for p in preds)
    columns = sorted({-1 if n.worker is None else n.worker for n in nodes})
    slots: dict[tuple, int] = {}
    for n in nodes:
        key = (-1 if n.worker is None else n.worker, depth[n.name])
        slots[key] = slots.get(key, 0) + 1
    width = {c: max(v for (cc, _), v in slots.items() if cc == c) for c in columns}
    left, x0 = 0.0, {}
    for c in columns:
        x0[c], left = left, left + 3.0 * width[c] + 1.0
    used: dict[tuple, int] = {}
    pos = {}
    for n in nodes:
        c = -1 if n.worker is None else n.worker
        k = used.get((c, depth[n.name]), 0)
        used[c, depth[n.name]] = k + 1
        pos[n.name] = (x0[c] + 3.0 * k, -1.4 * depth[n.name])
    return pos


def draw_plan(g: nx.DiGraph, path: str, fmt: str = "svg") -> None:
    """Draw the partitioned graph to ``path`` as svg or png."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    nodes = payloads(g)
    pos = _positions(nodes, g)
    servers = servers_of(g)
    xs, ys = [p[0] for p in pos.values()] or [0], [p[1] for p in pos.values()] or [0]
    fig, ax = plt.subplots(figsize=(max(6.0, (max(xs) - min(xs)) * 0.9 + 4),
                                    max(4.0, (max(ys) - min(ys)) * 0.75 + 2)))
    for u, v in g.edges:
        bridge = g.nodes[u]["kind"] == "bridge_src"
        ax.annotate("", xy=pos[v], xytext=pos[u], arrowprops=dict(
            arrowstyle="->", shrinkA=16, shrinkB=16, color="#d62828" if bridge else "#555555",
            linestyle="--" if bridge else "-"))
    for n in nodes:
        x, y = pos[n.name]
        ax.text(x, y, label(g, n, servers), ha="center", va="center", fontsize=6.5,
                bbox=dict(boxstyle="round,pad=0.35" if n.kind == "field" else "square,pad=0.35",
                          fc=worker_colour(n.worker), ec="#333333",
                          ls="--" if n.inserted else "-"))
    workers = sorted({n.worker for n in nodes if n.worker is not None})
    handles = [Patch(fc=worker_colour(w), ec="#333333", label=f"worker {w}") for w in workers]
    handles.append(Patch(fc="#ffffff", ec="#333333", ls="--", label="inserted layer"))
    ax.legend(handles=handles, loc="upper right", fontsize=7)
    ax.set_title(f"net {g.graph.get('net', '')}: {len(workers)} worker(s) per group; "
                 "params -> servers s0..")
    ax.axis("off")
    ax.set_xlim(min(xs) - 2, max(xs) + 2)
    ax.set_ylim(min(ys) - 1, max(ys) + 1)
    fig.savefig(path, format=fmt, bbox_inches="tight")
    plt.close(fig)
