"""Pass: replicate every layer per worker (``name@i``) and every inserted connection layer
per copy (slice and split beside the source's copies, concate beside the consumer's), with the
region each copy holds, its shape, its inputs in source order and its param parts (a feature
copy's params are sliced on their feature axis; a batch copy holds all of them)."""
from __future__ import annotations

import networkx as nx

from singa_dsl.errors import SingaConfigError
from .graph import FIELD
from .partition_regions import (AXIS, FEATURE, bounds, computes_whole, connection, copies,
                                features, held_parts, needed_parts, part_region)
from .partition_types import Input, ParamPart, PartNode, build


def replicate_layers(g: nx.DiGraph) -> nx.DiGraph:
    """Every layer becomes its copies ``name@i``; every connection node its copies (slice and
    split beside the source's copies, concate beside the consumer's), with regions, shapes,
    inputs and param parts: the partitioned graph of PartNode payloads."""
    w, b = g.graph["workers"], g.graph["batch"]
    nodes: list[PartNode] = []
    for name in nx.lexicographical_topological_sort(g):
        data = g.nodes[name]
        if data["kind"] == FIELD:
            nodes.append(PartNode(name, "field", name, None))
        elif "conn" in data:
            nodes.extend(_connection_copies(g, name, w, b))
        else:
            nodes.extend(_layer_copies(g, data["layer"], w, b))
    return build(nodes, dict(g.graph))


def _source_input(g, dst, k, j, w, b) -> Input:
    s, v = dst.sources[k], g.nodes[dst.name]["via"][k]
    need = needed_parts(dst.in_shapes[k].shape, dst, w, b)[j]
    kind = g.nodes[v]["kind"]
    if kind == FIELD or kind == "layer":
        return Input(v if kind == FIELD else f"{v}@{j}", need, s)
    if kind == "concate":
        return Input(f"{v}@{j}", need, s)
    held = held_parts(g.nodes[s]["layer"], w, b)
    i = next(i for i, h in enumerate(held) if h & need is not None)
    return Input(f"{v}@{i}", held[i] & need, s)


def _layer_copies(g, layer, w, b) -> list[PartNode]:
    n = len(copies(layer.partition, w))
    return [PartNode(f"{layer.name}@{j}", "layer", layer.name, j, layer.partition, j, n,
                     part_region(layer.partition, j, w, b, layer.out.shape), layer.out.shape,
                     layer.out.dtype, tuple(_source_input(g, layer, k, j, w, b)
                                            for k in range(len(layer.sources))),
                     _param_parts(layer, j, w), layer, span=layer.span)
            for j in range(n)]


def _param_parts(layer, j: int, w: int) -> tuple[ParamPart, ...]:
    n = len(copies(layer.partition, w))
    if layer.partition != FEATURE or computes_whole(layer.op, layer.attrs, FEATURE):
        return tuple(ParamPart(p.key, p.key, p.shape, replicas=n) for p in layer.params)
    f = features(layer.out.shape)
    transposed = connection(layer.op, layer.attrs) == "one_to_all_t"
    parts = []
    for p in layer.params:
        axis = 1 if transposed and p.role == "weight" and len(p.shape) == 2 else 0
        if p.shape[axis] != f:
            raise SingaConfigError(f"cannot split param {p.key} of shape {list(p.shape)} "
                                   f"with the {f} features of layer '{layer.name}'", layer.span,
                                   "partition the layer on the batch (@batch)")
        lo, hi = bounds(f, w, j)
        shape = tuple(hi - lo if a == axis else d for a, d in enumerate(p.shape))
        parts.append(ParamPart(p.key, f"{p.key}@{j}", shape, axis, lo, hi))
    return tuple(parts)


def _connection_copies(g, name, w, b) -> list[PartNode]:
    s, d, k = g.nodes[name]["conn"]
    src, dst = g.nodes[s]["layer"], g.nodes[d]["layer"]
    held, needed = held_parts(src, w, b), needed_parts(src.out.shape, dst, w, b)
    kind = g.nodes[name]["kind"]
    common = dict(sample_shape=src.out.shape, dtype=src.out.dtype, span=dst.span)
    if kind != "concate":           # slice / split: beside each source copy, sends what it holds
        return [PartNode(f"{name}@{i}", kind, s, i, src.partition, i, len(held), h,
                         inputs=(Input(f"{s}@{i}", h, s),), axis=AXIS.get(dst.partition),
                         **common) for i, h in enumerate(held)]
    feeder = next(iter(g.predecessors(name)))
    out = []
    for j, need in enumerate(needed):
        ins = tuple(Input(f"{feeder}@{i}", h & need, s) for i, h in enumerate(held)
                    if h & need is not None)
        out.append(PartNode(f"{name}@{j}", kind, s, j, dst.partition, j, len(needed), need,
                            inputs=ins, axis=AXIS.get(src.partition), **common))
    return out
