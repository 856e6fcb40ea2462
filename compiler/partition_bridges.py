"""Pass: a bridge pair on every edge between two workers (SINGA's BridgeSrc/BridgeDst)."""
from __future__ import annotations

import dataclasses

import networkx as nx

from .partition_types import Input, PartNode, build, payloads


def insert_bridges(g: nx.DiGraph) -> nx.DiGraph:
    """Every edge a@i → b@j between two workers becomes a → bridge_src(a@i->b@j) (on i) →
    bridge_dst(a@i->b@j) (on j) → b: BridgeSrc sends the piece forward and receives its
    gradient backward; BridgeDst the reverse."""
    nodes = []
    for n in payloads(g):
        new_inputs = []
        for inp in n.inputs:
            src = g.nodes[inp.node]["node"]
            if src.worker is None or n.worker is None or src.worker == n.worker:
                new_inputs.append(inp)
                continue
            tag = f"({src.name}->{n.name})"
            common = dict(of=inp.of, dim=src.dim, region=inp.region,
                          sample_shape=src.sample_shape, dtype=src.dtype, span=n.span)
            bs = PartNode("bridge_src" + tag, "bridge_src", worker=src.worker, inputs=(inp,),
                          pair="bridge_dst" + tag, **common)
            bd = PartNode("bridge_dst" + tag, "bridge_dst", worker=n.worker,
                          inputs=(Input(bs.name, inp.region, inp.of),), pair=bs.name, **common)
            nodes += [bs, bd]
            new_inputs.append(Input(bd.name, inp.region, inp.of))
        nodes.append(_with_inputs(n, tuple(new_inputs)))
    return build(nodes, dict(g.graph))


def _with_inputs(n: PartNode, inputs) -> PartNode:
    return n if inputs == n.inputs else dataclasses.replace(n, inputs=inputs)
