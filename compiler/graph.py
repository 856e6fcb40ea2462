"""Layer drafts → the checked net: a networkx DiGraph (one frozen LayerSpec per node, data
fields as source nodes), checked for undefined names and cycles, every shape inferred in
topological order, every param resolved.  This graph is what later passes transform."""
from __future__ import annotations

import difflib

import networkx as nx

from singa_dsl.errors import Diagnostics, SingaConfigError, SingaNameError, SingaShapeError
from .check_net import LayerDraft
from .model import DataSpec, LayerSpec, NetSpec
from .ops import ShapeProblem, TensorInfo
from .params import check_shares_and_names, resolve_param, slot_value
from .values import INVALID

FIELD = "field"   # node kind of a data field; layers are kind "layer"


def build_net(name: str, drafts: list[LayerDraft], net_attrs: dict, data: dict[str, DataSpec],
              init_from: tuple, diag: Diagnostics, span,
              broken: set[str] = frozenset()) -> tuple[NetSpec, nx.DiGraph]:
    g = nx.DiGraph()
    by_name = {d.name: d for d in drafts}
    order = {d.name: k for k, d in enumerate(drafts)}
    for d in drafts:
        g.add_node(d.name, kind="layer")
    for d in drafts:
        for i, s in enumerate(d.sources):
            if s.is_field:
                g.add_node(s.name, kind=FIELD)
            elif s.name in broken:
                continue       # its own statement already reported an error
            elif s.name not in by_name:
                # Prefer layers written before this one: a later one would usually be a cycle.
                earlier = [n for n in by_name if order[n] < order[d.name]]
                close = difflib.get_close_matches(s.name, earlier, n=1, cutoff=0.6) or \
                    difflib.get_close_matches(s.name, list(by_name), n=1, cutoff=0.6)
                diag.error(SingaNameError, f"undefined layer '{s.name}'", s.span,
                           f"did you mean '{close[0]}'?" if close else
                           "sources are layers of this net or data fields such as mnist.image")
                continue
            g.add_edge(s.name, d.name, index=i)
    if _has_cycle(g, by_name, diag):
        return NetSpec(name, net_attrs["partition"], net_attrs["unroll"], ()), g
    layers = _infer(g, by_name, net_attrs, data, diag)
    check_shares_and_names([p for l in layers for p in l.params], init_from, diag)
    for l in layers:
        g.nodes[l.name]["layer"] = l
    return NetSpec(name, net_attrs["partition"], net_attrs["unroll"], tuple(layers), span), g


def _has_cycle(g: nx.DiGraph, by_name, diag: Diagnostics) -> bool:
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return False
    names = [u for u, _ in cycle] + [cycle[0][0]]
    first = by_name[names[0]]
    diag.error(SingaConfigError, "the net has a cycle: " + " -> ".join(names), first.name_span,
               "a layer cannot depend on itself; express recurrence with 'unroll' and a "
               "recurrent op (gru, lstm, rnn)")
    return True


def _field_info(ref: str, data: dict[str, DataSpec], unroll: int, span,
                diag: Diagnostics) -> TensorInfo | None:
    block, field = ref.split(".", 1)
    spec = data.get(block)
    phase = None if spec is None else spec.phases.get("train") or next(
        iter(spec.phases.values()), None)
    if phase is None:
        return None     # the data block already reported its own error
    if field not in phase.fields:
        diag.error(SingaNameError, f"data {block} has no field '{field}'", span,
                   f"{phase.kind}() provides: {', '.join(sorted(phase.fields))}")
        return None
    shape, dtype = phase.fields[field]
    shape = tuple(shape)
    if unroll > 1:
        if not shape or shape[0] != unroll:
            diag.error(SingaShapeError, f"the net unrolls {unroll} steps but {ref} has "
                       f"shape {list(shape)} per sample", span,
                       f"its first dimension must be the sequence length {unroll}")
            return None
        shape = shape[1:]
    return TensorInfo(shape, dtype)


def _infer(g: nx.DiGraph, by_name: dict[str, LayerDraft], net_attrs, data, diag) -> list[LayerSpec]:
    infos: dict[str, TensorInfo | None] = {}
    layers = []
    for node in nx.topological_sort(g):
        if g.nodes[node]["kind"] == FIELD:
            continue
        d = by_name[node]
        ins = []
        for s in d.sources:
            info = _field_info(s.name, data, net_attrs["unroll"], s.span, diag) if s.is_field \
                else infos.get(s.name)
            ins.append(info)
        short = len(ins) < d.op.min_sources or (not d.op.variadic and len(ins) != len(d.op.sources))
        if short or any(i is None for i in ins) or \
                INVALID in d.bound.values.values():
            infos[node] = None
            _check_inits_alone(d, diag)
            continue
        out = _infer_one(d, tuple(ins), diag)
        infos[node] = out
        if out is None:
            continue
        slots = d.op.params(d.bound.values, tuple(ins), out)
        params = tuple(resolve_param(d.name, s, slot_value(d.bound.values, s, d.op.param_groups),
                                     d.bound.spans.get(s.name, d.span), diag) for s in slots)
        partition = _partition(d, net_attrs, diag)
        layers.append(LayerSpec(d.name, d.op.name, tuple(s.name for s in d.sources),
                                dict(d.bound.values), partition, tuple(ins), out, params, d.span))
    return layers


def _check_inits_alone(d: LayerDraft, diag):
    """A layer whose shapes are unknown still gets its initializers checked, so a bad size
    does not hide a misspelt initializer until the next run."""
    from .ops import ParamSlot
    for a in d.op.attrs:
        value = d.bound.values.get(a.name)
        if a.kind == "init" and value not in (None, INVALID):
            resolve_param(d.name, ParamSlot(a.name, (1,), "weight", 1, 1), value,
                          d.bound.spans.get(a.name, d.span), diag)


def _infer_one(d: LayerDraft, ins: tuple[TensorInfo, ...], diag) -> TensorInfo | None:
    for i, t in enumerate(ins):
        want = d.op.source_dtype(i)
        if want != "any" and t.dtype != want:
            what = "integer ids or labels" if t.dtype == "int32" else "real-valued features"
            diag.error(SingaShapeError, f"source {i + 1} of {d.op.name} gives {what}, but "
                       f"{d.op.name} expects " + ("integer ids or labels" if want == "int32"
                                                   else "real-valued features"),
                       d.sources[i].span,
                       "turn ids into features with onehot(x, vocab) or embedding(x, vocab, dim)"
                       if want == "float32" else None)
            return None
    try:
        return d.op.infer(d.bound.values, ins)
    except ShapeProblem as p:
        if isinstance(p.at, int) and p.at < len(d.sources):
            span = d.sources[p.at].span
        elif isinstance(p.at, str) and p.at in d.bound.spans:
            span = d.bound.spans[p.at]
        else:
            span = d.span
        shapes = ", ".join(str(list(t.shape)) for t in ins)
        diag.error(SingaShapeError, f"{d.op.name} layer '{d.name}': {p.message}", span,
                   p.hint or f"input shape{'s' if len(ins) > 1 else ''}: {shapes}")
        return None


def _partition(d: LayerDraft, net_attrs, diag) -> str:
    """A layer's partition dimension: its annotation, else the net's default.  A default the
    op cannot split on falls back to batch; an explicit annotation it cannot honour is an error."""
    if d.partition is not None:
        if d.partition != "none" and d.partition not in d.op.partition:
            dims = ", ".join("@" + k for k in d.op.partition) or "none"
            diag.error(SingaConfigError, f"{d.op.name} cannot be partitioned on the "
                       f"{d.partition} dimension", d.partition_span,
                       f"{d.op.name} can split on: {dims}, @none")
        return d.partition
    default = net_attrs["partition"]
    if default in ("none", "auto") or default in d.op.partition:
        return default
    return "batch" if "batch" in d.op.partition else "none"
