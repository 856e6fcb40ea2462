"""The payloads of a partitioned graph: one frozen PartNode per node (a layer copy ``name@i``,
an inserted connection layer, a bridge end, or a data field), with what it holds and reads.

The graph is a networkx DiGraph whose node attribute ``node`` is the PartNode and ``kind`` its
kind; an edge u→v carries ``region``, the part of a logical tensor v reads from u.  A node's
``inputs`` list its sources in order (an op's source order matters; edges alone lose it)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from singa_dsl.errors import Span, UNKNOWN_SPAN
from .partition_regions import Region

BYTES = 4                                   # float32 and int32 on the device
INSERTED = ("slice", "split", "concate", "bridge_src", "bridge_dst")


@dataclass(frozen=True)
class Input:
    node: str            # the producer: a node of the partitioned graph, or a data field
    region: Region       # the part of the logical tensor ``of`` it delivers
    of: str              # the logical tensor: a layer of the net or a data field


@dataclass(frozen=True)
class ParamPart:
    """The part of a logical param a layer copy holds: all of it (replicated on every batch
    copy, ``replicas`` of them) or the slice ``start:stop`` of ``axis`` (a feature copy)."""
    key: str             # ParamSpec.key of the logical param
    name: str            # "ip1.w" (whole) or "ip1.w@1" (feature slice 1)
    shape: tuple[int, ...]
    axis: int | None = None
    start: int = 0
    stop: int = 0
    replicas: int = 1

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class PartNode:
    name: str            # "conv1@0", "slice(x)@1", "bridge_src(a@0->b@1)", "cifar.image"
    kind: str            # layer | field | slice | split | concate | bridge_src | bridge_dst
    of: str              # the logical tensor it computes (layer copies) or moves
    worker: int | None   # partition id; None for a data field (each worker reads its rows)
    dim: str = "none"    # partition dimension of ``of``'s layer (of the consumer, for concate)
    part: int = 0
    nparts: int = 1
    region: Region | None = None     # the part of ``of`` it outputs
    sample_shape: tuple[int, ...] = ()
    dtype: str = "float32"
    inputs: tuple[Input, ...] = ()
    params: tuple[ParamPart, ...] = ()
    layer: Any = None                # the logical LayerSpec, for layer copies
    axis: int | None = None          # blob axis a concate joins / a slice cuts (0 rows, 1 features)
    pair: str | None = None          # the other end of a bridge
    span: Span = field(default=UNKNOWN_SPAN, compare=False, repr=False)

    @property
    def inserted(self) -> bool:
        return self.kind in INSERTED

    @property
    def shape(self) -> tuple[int, ...]:
        return self.region.shape(self.sample_shape) if self.region else ()

    @property
    def nbytes(self) -> int:
        return self.region.size(self.sample_shape) * BYTES if self.region else 0


def build(nodes: list[PartNode], attrs: dict) -> nx.DiGraph:
    """A partitioned graph from payloads listed producers first; edges follow the inputs."""
    g = nx.DiGraph(**attrs)
    for n in nodes:
        g.add_node(n.name, kind=n.kind, node=n)
    for n in nodes:
        for inp in n.inputs:
            if inp.node not in g:
                g.add_node(inp.node, kind="field", node=PartNode(inp.node, "field", inp.of, None))
            g.add_edge(inp.node, n.name, region=inp.region)
    return g


def payloads(g: nx.DiGraph) -> list[PartNode]:
    """The nodes in a deterministic topological order (ties broken by name)."""
    return [g.nodes[n]["node"] for n in nx.lexicographical_topological_sort(g)]


def to_data(g: nx.DiGraph) -> dict:
    """The partitioned graph as plain JSON-ready data: nodes (without their LayerSpec, named
    by ``of``), param slices and placement."""
    import dataclasses

    def plain(x):
        if dataclasses.is_dataclass(x):
            return {f.name: plain(getattr(x, f.name)) for f in dataclasses.fields(x)
                    if f.name not in ("layer", "span")}
        if isinstance(x, (tuple, list)):
            return [plain(v) for v in x]
        return x
    return {"net": g.graph.get("net"), "workers": g.graph.get("workers"),
            "batch": g.graph.get("batch"),
            "nodes": [dict(plain(n), op=n.layer.op if n.layer else None) for n in payloads(g)],
            "param_slices": plain(g.graph.get("param_slices", ())),
            "placement": plain(g.graph.get("placement"))}
