"""Partitioning the net inside a worker group (SINGA's NeuralNet::Create with npartitions = g),
as passes, each graph → new graph:

    logical_graph → assign_partition_dims → insert_partition_layers → replicate_layers
        → insert_bridges → slice_params → place            (``partition_program`` runs them)

SINGA's rule for an edge src → dst (v0.3 AddPartitionConnectionLayers), which the region
arithmetic below reproduces and extends to @none (one copy, on worker 0):

    src_pdim | dst_pdim | dst src_neuron_connection | action
       0     |    0     | OneToOne/OneToAll           | direct (copy i → copy i)
       1     |    1     | OneToOne                    | direct
      1/0    |   0/1    | OneToOne                    | Slice(on dst_pdim) -> Concate(on src_pdim)
       1     |    0     | OneToAll                    | Slice -> Concate
      0/1    |    1     | OneToAll                    | Split(num_splits=g) -> Concate(on src_pdim)

Copy j of dst needs a region of src (``need_region``); copy i of src holds ``part_region``.
When they differ, src copy i sends the pieces ``held(i) ∩ need(j)``: through ``slice(x)@i``
when a piece is less than what it holds, ``split(x)@i`` when it sends all of it to several
copies; copy j joins several pieces in ``concate(...)@j``.  Names are SINGA's, with ``->dst``
added when a layer feeds several re-partitioned consumers (``slice(h->fc2)``) and ``#k`` when a
layer reads the same source twice.  Every edge between workers then gets a bridge pair."""
from __future__ import annotations

import networkx as nx

from singa_dsl.errors import SingaError
from .graph import FIELD
from .partition_bridges import insert_bridges
from .partition_dims import assign_partition_dims, layers, logical_graph
from .partition_regions import held_parts, needed_parts
from .partition_replicate import replicate_layers

__all__ = ["partition_program", "edge_kinds", "insert_partition_layers", "replicate_layers",
           "insert_bridges", "assign_partition_dims", "logical_graph"]


def partition_program(program, workers: int | None = None, dims=None, device=None,
                      workers_per_process: int = 1, servers_per_process: int = 1) -> nx.DiGraph:
    """The checked program's net partitioned for its cluster (or ``workers`` per group):
    the partitioned graph with its param slices and process placement as graph attributes."""
    from .place import place, slice_params
    try:
        g = logical_graph(program, workers)
        g = assign_partition_dims(g, dims, device)
        g = insert_partition_layers(g)
        g = replicate_layers(g)
        g = insert_bridges(g)
        g = slice_params(g)
        return place(g, workers_per_process, servers_per_process)
    except SingaError as e:
        raise e.with_source(program.source)


# ---- insert_partition_layers ----------------------------------------------------------------
def _pieces(held, needed) -> dict[tuple[int, int], object]:
    return {(i, j): p for i, h in enumerate(held) for j, n in enumerate(needed)
            for p in [h & n] if p is not None}


def edge_kinds(src, dst, workers: int, batch: int) -> tuple[str | None, str | None] | None:
    """None for a direct edge, else (slice | split | None, concate | None)."""
    held, needed = held_parts(src, workers, batch), needed_parts(src.out.shape, dst, workers, batch)
    if held == needed:
        return None
    pieces = _pieces(held, needed)
    sent = {i: [p for (a, _), p in pieces.items() if a == i] for i in range(len(held))}
    got = {j: [p for (_, b), p in pieces.items() if b == j] for j in range(len(needed))}
    if any(p != held[i] for i, ps in sent.items() for p in ps):
        src_kind = "slice"
    else:
        src_kind = "split" if any(len(ps) > 1 for ps in sent.values()) else None
    return src_kind, "concate" if any(len(ps) > 1 for ps in got.values()) else None


def insert_partition_layers(g: nx.DiGraph) -> nx.DiGraph:
    """Logical slice/split/concate nodes (attribute ``conn``: source, consumer, index) on every
    edge whose ends are partitioned differently; each layer node gets ``via``: the node that
    delivers each of its sources."""
    w, b = g.graph["workers"], g.graph["batch"]
    out = nx.DiGraph(**g.graph)
    out.add_nodes_from(g.nodes(data=True))
    plans = {}
    for dst in layers(g):
        for k, s in enumerate(dst.sources):
            if g.nodes[s]["kind"] != FIELD:
                plans[dst.name, k] = edge_kinds(g.nodes[s]["layer"], dst, w, b)
    fanout = {}
    for (d, k), kinds in plans.items():
        if kinds is not None:
            s = g.nodes[d]["layer"].sources[k]
            fanout[s] = fanout.get(s, 0) + 1
    for dst in layers(g):
        via = []
        for k, s in enumerate(dst.sources):
            kinds = plans.get((dst.name, k))
            if kinds is None:
                out.add_edge(s, dst.name, index=k)
                via.append(s)
                continue
            tag = s if fanout[s] == 1 else f"{s}->{dst.name}"
            tag += f"#{k}" if dst.sources.count(s) > 1 else ""
            prev, inner = s, tag
            for kind in kinds:
                if kind is None:
                    continue
                name = f"{kind}({inner})"
                out.add_node(name, kind=kind, conn=(s, dst.name, k))
                out.add_edge(prev, name, index=0)
                prev, inner = name, name
            out.add_edge(prev, dst.name, index=k)
            via.append(prev)
        out.nodes[dst.name]["via"] = tuple(via)
    return out
