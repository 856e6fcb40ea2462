"""Pass: resolve each layer's partition dimension for the worker group at hand.

``logical_graph`` copies the checked graph with the facts every partitioning pass reads
(workers per group, training batch, net order).  ``assign_partition_dims`` applies overrides,
resolves ``auto`` with the cost model, and checks every dimension against the op registry and
the group size: an op that cannot split on a dimension, or a dimension that does not divide
evenly, is a located error at the layer."""
from __future__ import annotations

import dataclasses
from typing import Mapping

import networkx as nx

from singa_dsl.errors import SingaConfigError, SingaShapeError
from .graph import FIELD
from .ops import OPS
from .partition_regions import BATCH, FEATURE, NONE, features

DIMS = (BATCH, FEATURE, NONE)


def logical_graph(program, workers: int | None = None) -> nx.DiGraph:
    """The checked net, with graph attributes workers, batch, net, order and cluster."""
    cluster = program.cluster
    if workers is not None:
        if workers < 1:
            raise SingaConfigError(f"workers per group must be at least 1, got {workers}")
        cluster = dataclasses.replace(cluster, workers_per_group=workers)
    g = program.graph.copy()
    g.graph.update(workers=cluster.workers_per_group, batch=program.batch,
                   batch_span=_train_span(program),
                   net=program.net.name, order=tuple(l.name for l in program.net.layers),
                   cluster=cluster)
    return g


def _train_span(program):
    """Where the training batch is written: the train source of the data block the net reads."""
    for l in program.net.layers:
        for s in l.sources:
            train = program.data.get(s.split(".")[0]) if "." in s else None
            if train is not None and "train" in train.phases:
                return train.phases["train"].span
    return None


def layers(g: nx.DiGraph):
    """The LayerSpecs of a logical graph in topological order (ties broken by name)."""
    return [g.nodes[n]["layer"] for n in nx.lexicographical_topological_sort(g)
            if g.nodes[n]["kind"] != FIELD and "layer" in g.nodes[n]]


def assign_partition_dims(g: nx.DiGraph, overrides: Mapping[str, str] | None = None,
                          device=None) -> nx.DiGraph:
    """Every layer's LayerSpec.partition becomes batch, feature or none."""
    out = g.copy()
    overrides = dict(overrides or {})
    for layer in layers(g):
        dim = overrides.pop(layer.name, layer.partition)
        check_dim(layer, dim, g.graph["workers"], g.graph["batch"], allow_auto=True,
                  batch_span=g.graph.get("batch_span"))
        out.nodes[layer.name]["layer"] = dataclasses.replace(layer, partition=dim)
    if overrides:
        raise SingaConfigError(f"no layer named {', '.join(sorted(overrides))} to partition")
    auto = [l.name for l in layers(out) if l.partition == "auto"]
    if auto:
        from .partition_auto import choose_dims
        for name, dim in choose_dims(out, device).items():
            l = out.nodes[name]["layer"]
            out.nodes[name]["layer"] = dataclasses.replace(l, partition=dim)
    return out


def check_dim(layer, dim: str, workers: int, batch: int, allow_auto: bool = False,
              batch_span=None):
    op = OPS[layer.op]
    if dim == "auto" and allow_auto:
        return
    if dim not in DIMS:
        raise SingaConfigError(f"unknown partition dimension '{dim}' for layer '{layer.name}'",
                               layer.span, "use batch, feature, none or auto")
    if dim != NONE and dim not in op.partition:
        can = ", ".join("@" + d for d in op.partition) or "no dimension"
        raise SingaConfigError(f"{op.name} layer '{layer.name}' cannot be partitioned on the "
                               f"{dim} dimension", layer.span,
                               f"{op.name} can split on: {can}; @none keeps it whole")
    if workers == 1 or dim == NONE:
        return
    if dim == BATCH and batch % workers:
        raise SingaShapeError(f"batch {batch} is not divisible by {workers} workers per group "
                              f"(layer '{layer.name}' is partitioned on the batch)",
                              batch_span or layer.span,
                              f"use a batch that is a multiple of {workers}")
    f = features(layer.out.shape)
    if dim == FEATURE and (not layer.out.shape or f % workers):
        raise SingaShapeError(f"layer '{layer.name}' has {f} features, not divisible by "
                              f"{workers} workers per group", layer.span,
                              f"partition it on the batch (@batch) or make it a multiple of "
                              f"{workers}")


def feasible_dims(layer, workers: int, batch: int) -> tuple[str, ...]:
    """The dimensions ``auto`` may choose for a layer: batch and feature where the op can
    split and the sizes divide; none only when neither can."""
    ok = []
    for dim in (BATCH, FEATURE):
        try:
            check_dim(layer, dim, workers, batch)
            ok.append(dim)
        except (SingaConfigError, SingaShapeError):
            pass
    return tuple(ok) or (NONE,)
