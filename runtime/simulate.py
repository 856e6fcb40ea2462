"""An in-process executor for partitioned graphs: every worker of a group simulated in one
process, on the ops' numpy float64 references (``compiler.ops.registry.reference_api``).

``simulate(partitioned_graph, data, values)`` runs one training step the way SINGA's workers
would: each node of the partitioned graph (layer copy ``name@i``, slice, split, concate,
bridge) computes from exactly the inputs the partitioning passes gave it, so a missing or
wrong connection shows up as a wrong result or a failed lookup, never as silently borrowed
data.  ``reference_step(checked_graph, data, values)`` is the unpartitioned step it must equal.

Both return the loss (the batch mean, summed over loss layers), the gradient of every logical
param (summed over batch copies, feature slices put back in place) and every layer's output.
Each loss copy computes the mean over its own rows, so its gradient is scaled by rows/batch:
the partitioned step then computes the gradient of the same global mean."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from singa_dsl.compiler.ops import OPS
from singa_dsl.compiler.ops.registry import RefContext
from singa_dsl.compiler.partition_regions import Region, computes_whole
from singa_dsl.compiler.partition_types import payloads


@dataclass
class StepResult:
    loss: float
    grads: dict[str, np.ndarray]          # logical param key → gradient
    outputs: dict[str, np.ndarray]        # logical layer → its whole output (forward)
    coverage: dict[str, np.ndarray] = field(default_factory=dict)  # layer → times each
    #                                       (row, feature) was computed (partitioned run only)


# ---- regions of arrays ---------------------------------------------------------------------
def _index(have, want, sample_shape) -> tuple:
    """Index into an array holding region ``have`` that selects region ``want``."""
    if not have.contains(want):
        raise ValueError(f"region {want} is not inside the {have} a producer holds")
    rows = slice(want.rows[0] - have.rows[0], want.rows[1] - have.rows[0])
    if not sample_shape:
        return (rows,)
    return rows, slice(want.feats[0] - have.feats[0], want.feats[1] - have.feats[0])


def _field_region(arr):
    return Region((0, len(arr)), (0, arr.shape[1] if arr.ndim > 1 else 1))


def _sample_shape(arr):
    return tuple(arr.shape[1:])


class _Run:
    def __init__(self, graph, data, values, train, seed):
        self.g, self.data, self.values = graph, data, values
        self.batch = graph.graph["batch"]
        self.train, self.seed = train, seed
        self.out, self.grad, self.saved = {}, {}, {}
        self.param_grads = {k: np.zeros(np.shape(v)) for k, v in values.items()}
        self.loss = 0.0

    # what a producer holds: (array, region, per-sample shape)
    def held(self, name):
        if name in self.out:
            return self.out[name]
        arr = self.data[name]
        return arr, _field_region(arr), _sample_shape(arr)

    def take(self, inp):
        arr, region, shape = self.held(inp.node)
        return arr[_index(region, inp.region, shape)]

    def add_grad(self, inp, dx):
        if dx is None or inp.node not in self.out:      # data fields take no gradient
            return
        arr, region, shape = self.out[inp.node]
        acc = self.grad.setdefault(inp.node, np.zeros(arr.shape))
        acc[_index(region, inp.region, shape)] += dx

    # ---- one node -------------------------------------------------------------------------
    def params_of(self, n):
        slots = {p.key: p.slot for p in n.layer.params}
        out = {}
        for part in n.params:
            v = np.asarray(self.values[part.key], dtype=np.float64)
            if part.axis is not None:
                v = np.take(v, range(part.start, part.stop), axis=part.axis)
            out[slots[part.key]] = v
        return out

    def forward(self, n):
        if n.kind != "layer":
            arr = self._assemble(n)
            self.out[n.name] = (arr, n.region, n.sample_shape)
            return
        op, attrs = OPS[n.layer.op], n.layer.attrs
        xs = [self.take(i) for i in n.inputs]
        params = self.params_of(n)
        ctx = RefContext(train=self.train, rng=np.random.default_rng(self.seed))
        y = op.forward(attrs, xs, params, ctx)
        whole = computes_whole(n.layer.op, attrs, n.dim)
        self.saved[n.name] = (xs, params, y, ctx, whole)
        if whole:
            y = y[:, n.region.feats[0]:n.region.feats[1]]
        if op.role == "loss":
            self.loss += float(np.sum(y)) / self.batch
        self.out[n.name] = (y, n.region, n.sample_shape)

    def _assemble(self, n):
        pieces = [(i, self.take(i)) for i in n.inputs]
        if len(pieces) == 1 and pieces[0][0].region == n.region:
            return pieces[0][1].copy()
        arr = np.zeros(n.shape, dtype=pieces[0][1].dtype)
        for inp, piece in pieces:
            arr[_index(n.region, inp.region, n.sample_shape)] = piece
        return arr

    def backward(self, n):
        dy = self.grad.get(n.name)
        if n.kind != "layer":
            if dy is not None:
                for inp in n.inputs:
                    self.add_grad(inp, dy[_index(n.region, inp.region, n.sample_shape)])
            return
        op, attrs = OPS[n.layer.op], n.layer.attrs
        xs, params, y, ctx, whole = self.saved[n.name]
        is_loss = op.role == "loss"
        if dy is None and not is_loss:
            return
        if whole:
            full = np.zeros(y.shape)
            full[:, n.region.feats[0]:n.region.feats[1]] = dy
            dy = full
        dxs, pgrads = op.backward(attrs, xs, params, y, dy, ctx)
        scale = n.region.nrows / self.batch if is_loss else 1.0
        for inp, dx in zip(n.inputs, dxs):
            self.add_grad(inp, None if dx is None else dx * scale)
        slots = {p.slot: p.key for p in n.layer.params}
        parts = {p.key: p for p in n.params}
        for slot, gr in pgrads.items():
            key = slots[slot]
            part = parts[key]
            acc = self.param_grads[key]
            if part.axis is None:
                acc += gr * scale
            else:
                index = [slice(None)] * acc.ndim
                index[part.axis] = slice(part.start, part.stop)
                acc[tuple(index)] += gr * scale


def simulate(graph, data: dict, values: dict, *, train: bool = True, seed: int = 0) -> StepResult:
    """One forward and backward step of a partitioned graph (``compiler.partition``), all
    workers in this process.  ``data``: field name → the whole batch (rows first);
    ``values``: param key → its logical value."""
    run = _Run(graph, data, values, train, seed)
    order = [n for n in payloads(graph) if n.kind != "field"]
    for n in order:
        run.forward(n)
    for n in reversed(order):
        run.backward(n)
    outputs, coverage = {}, {}
    for n in order:
        if n.kind != "layer":
            continue
        arr, region, shape = run.out[n.name]
        if n.of not in outputs:
            f = shape[0] if shape else 1
            outputs[n.of] = np.zeros((run.batch,) + tuple(shape), dtype=arr.dtype)
            coverage[n.of] = np.zeros((run.batch, f), dtype=np.int64)
        whole = Region((0, run.batch), (0, coverage[n.of].shape[1]))
        outputs[n.of][_index(whole, region, shape)] = arr
        coverage[n.of][region.rows[0]:region.rows[1], region.feats[0]:region.feats[1]] += 1
    return StepResult(run.loss, run.param_grads, outputs, coverage)


def reference_step(graph, data: dict, values: dict, *, train: bool = True,
                   seed: int = 0) -> StepResult:
    """The same step on the unpartitioned checked graph (``program.graph``): layers in
    topological order on the whole batch."""
    import networkx as nx
    layers = [graph.nodes[n]["layer"] for n in nx.lexicographical_topological_sort(graph)
              if "layer" in graph.nodes[n]]
    batch = len(next(iter(data.values())))
    outs, saved, grads, loss = {}, {}, {}, 0.0
    pgrads = {k: np.zeros(np.shape(v)) for k, v in values.items()}
    for l in layers:
        op = OPS[l.op]
        xs = [data[s] if s in data else outs[s] for s in l.sources]
        params = {p.slot: np.asarray(values[p.key], dtype=np.float64) for p in l.params}
        ctx = RefContext(train=train, rng=np.random.default_rng(seed))
        outs[l.name] = op.forward(l.attrs, xs, params, ctx)
        saved[l.name] = (xs, params, ctx)
        if op.role == "loss":
            loss += float(np.sum(outs[l.name])) / batch
    for l in reversed(layers):
        op = OPS[l.op]
        dy = grads.get(l.name)
        if dy is None and op.role != "loss":
            continue
        xs, params, ctx = saved[l.name]
        dxs, pg = op.backward(l.attrs, xs, params, outs[l.name], dy, ctx)
        for s, dx in zip(l.sources, dxs):
            if dx is not None and s in outs:
                grads[s] = grads[s] + dx if s in grads else dx
        for p in l.params:
            if p.slot in pg:
                pgrads[p.key] += pg[p.slot]
    return StepResult(loss, pgrads, outs)
