"""Lowering a partitioned net for ONE worker of a group: model parallelism across processes.

``lower_partitioned`` runs every worker of a group in one plan; here each MPI worker rank
gets a plan of only the copies placed on it (its rows of a batch-split layer, its features of
a feature-split one over the group's whole batch, a ``@none`` layer on worker 0), by the same
graph walk restricted to its nodes.  What crossed between workers as a view there becomes a
transfer here — SINGA's BridgeSrc/BridgeDst:

* ``bridge_src`` (on the producer's worker): forward, a *send* of the piece it carries — the
  producer's buffer itself when the piece is all of it, else a contiguous copy of the block
  (``xchg:out:<bridge>``); backward, a *receive* of that piece's gradient into
  ``xchg:gin:<bridge>``, added into the producer's gradient like any consumer's part;
* ``bridge_dst`` (on the consumer's worker): forward, a *receive* into ``xchg:in:<bridge>``,
  which its consumers (a layer copy, or a ``concate`` copying it into place) read as a view;
  backward, a *send* of the gradient they wrote into ``xchg:grad:<bridge>`` (zeros when none
  of them needs it: the other end waits for it either way).

Each transfer is an ``Exchange`` (runtime/plan_types.py): a point of the train list (the
launches before it), the peer, the buffer and its size, and a number both ends share (pair
k: 2k forward, 2k+1 backward).  The worker runs its train list in segments between the points
(runtime/model_parallel.py).  Every worker walks the one topological order of the whole
graph restricted to its nodes, and a piece is always sent at an earlier place in that order
than it is received (forward; the reverse order backward), so the transfers cannot deadlock.

Params stay the logical ones (``param:ip1.w``), a feature copy addressing its slice in place,
so each worker's gradient buffer holds its contribution: the whole param for batch copies
(weighted by rows/batch already: a loss copy scales its gradient so), its slice for a feature
copy.  ``param_units`` says which workers produce each run of each param — the servers'
aggregation units (runtime/cluster.ParamUnit).  Evaluation (test, validate) stays the
unpartitioned plan's lists, run by the driver on params pulled whole from the servers."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import networkx as nx

from singa_dsl.errors import InternalError, SingaError
from singa_dsl.runtime.plan_types import Exchange
from .lower import lower_program
from .lower_partitioned import PASS, View, _assemble, _Lowering
from .ops.connection_cl import block_copy
from .partition_types import PartNode, payloads
from .plan import Plan


@dataclass(frozen=True)
class WorkerPlan:
    plan: Plan                         # the worker's train list; other lists unpartitioned
    worker: int                        # its index in the group
    workers: int
    exchanges: tuple[Exchange, ...]    # in train-list order


@dataclass(frozen=True)
class ModelParallel:
    """A job whose group runs its layers' partitions on separate worker ranks."""
    program: object
    graph: nx.DiGraph                  # the partitioned graph (partition_program)
    workers: int
    units: dict                        # param key → ((offset, size, workers), ...)
    dims: dict                         # layer → batch | feature | none
    # wrap(lower) → lower()'s result, lowered some way (run.py: with the tuned GEMMs)
    wrap: Callable | None = None

    def worker_plan(self, worker: int) -> WorkerPlan:
        lower = lambda: lower_worker(self.program, worker, graph=self.graph)   # noqa: E731
        return self.wrap(lower) if self.wrap is not None else lower()

    def describe(self) -> str:
        """Which layers split how, for the job's first message."""
        by = {}
        for layer, dim in self.dims.items():
            by.setdefault(dim, []).append(layer)
        return "; ".join(f"{d}: {', '.join(ls)}" for d, ls in sorted(by.items()))


def model_parallel(program, workers: int, *, ring: bool = False
                   ) -> tuple[ModelParallel | None, str | None]:
    """How the MPI runtime runs the program's group of ``workers``: (ModelParallel, None)
    when some layer is partitioned other than on the batch and each worker can run its
    partition; (None, None) when every layer splits on the batch (each worker computes its
    rows of every layer); (None, why) when a partition asked for cannot run across ranks —
    then every layer is split on the batch, which computes the same numbers."""
    from .partition import partition_program
    asked = program.net.partition == "auto" or any(
        l.partition != "batch" for l in program.net.layers)
    if workers < 2 or not asked:
        return None, None
    kind = program.algorithm.kind if program.algorithm else "?"
    try:
        g = partition_program(program, workers)
    except SingaError as e:
        return None, f"the partitioning cannot be run ({e.message})"
    dims = {}
    for n in payloads(g):
        if n.kind == "layer":
            dims.setdefault(n.of, n.dim)
    if all(d == "batch" for d in dims.values()):
        return None, None                        # (auto chose the batch everywhere)
    split = ", ".join(l for l, d in dims.items() if d != "batch")
    if kind != "bp":
        return None, f"layers {split}: only bp training runs model-parallel; this job uses " \
                     f"{kind}"
    if ring:
        return None, f"layers {split}: reduce: ring sums whole gradients over the group; " \
                     "model parallelism needs parameter servers (reduce: servers)"
    try:
        units = param_units(program, g)
    except _Unsupported as e:
        return None, str(e)
    return ModelParallel(program, g, workers, units, dims), None


class _Unsupported(Exception):
    pass


def param_units(program, g: nx.DiGraph) -> dict:
    """Param key → ((offset, size, workers), ...): the runs of each logical param (flattened)
    and the workers of a group whose copies produce its gradient — every copy of a
    batch-split layer, worker 0 for an unsplit one, one worker per feature slice."""
    params = {p.key: p for p in program.net.params}
    shared = {p.share_of for p in params.values() if p.share_of}
    whole: dict[str, set] = {}
    slices: dict[str, set] = {}
    for n in payloads(g):
        if n.kind != "layer":
            continue
        for part in n.params:
            p = params[part.key]
            key = p.share_of or p.key
            if part.axis is None:
                whole.setdefault(key, set()).add(n.worker)
                continue
            if p.share_of or p.key in shared:
                raise _Unsupported(f"layer '{n.of}' is split on its features and its param "
                                   f"{p.key} is shared with another layer")
            if part.axis != 0:
                raise _Unsupported(f"layer '{n.of}' is split on its features and its param "
                                   f"{p.key} is cut across its columns (transpose: true); "
                                   "the MPI runtime sends contiguous slices only")
            row = math.prod(params[key].shape[1:])
            slices.setdefault(key, set()).add((part.start * row, (part.stop - part.start) * row,
                                               (n.worker,)))
    out = {}
    for key in whole.keys() | slices.keys():
        if key in whole and key in slices:
            raise InternalError(PASS, f"param {key} is held whole and in slices")
        size = math.prod(params[key].shape)
        out[key] = ((0, size, tuple(sorted(whole[key]))),) if key in whole else \
            tuple(sorted(slices[key]))
    return out


def lower_worker(program, worker: int, workers: int | None = None, dims=None, device=None, *,
                 graph: nx.DiGraph | None = None) -> WorkerPlan:
    """Worker ``worker``'s part of the program's partitioned train step (``workers`` per
    group, default the cluster block's; ``dims``/``device`` as ``partition_program``;
    ``graph``: an already partitioned graph)."""
    from .partition import partition_program
    g = graph if graph is not None else partition_program(program, workers, dims, device)
    if not 0 <= worker < g.graph["workers"]:
        raise InternalError(PASS, f"worker {worker} of a group of {g.graph['workers']}")
    base = lower_program(program)
    try:
        low = _WorkerLowering(program, g, base, worker)
        low.forward()
        low.backward()
    except SingaError as e:
        raise e.with_source(program.source)
    keep = {x.buffer for x in low.exchanges}
    return WorkerPlan(_assemble(base, low.em, keep), worker, g.graph["workers"],
                      tuple(low.exchanges))


def _schedule(g: nx.DiGraph) -> list[PartNode]:
    """One topological order of the whole partitioned graph, which every worker follows over
    its own nodes (so that no two workers wait for each other: see the module's docstring).

    Which one matters for speed: a worker that meets a receive waits there, its device idle
    unless work it could do without its peers was enqueued before.  The order is a list
    schedule of the group: each worker has a clock; a node can start when its worker is free
    and (a receive) when its piece has been sent; its cost is the flops of the part it
    computes (connection layers and bridges cost nothing); the node that can start first
    goes next.  So a receive comes after the local work that does not need it, and before
    local work that could only start later — and, backward, the reverse order sends each
    gradient back as early as the forward order received its value late."""
    from .cost import compute_flops
    w, b = g.graph["workers"], g.graph["batch"]
    cost = {}
    for name in g:
        n = g.nodes[name]["node"]
        cost[name] = compute_flops(n.layer, n.dim, w, b)[n.worker] \
            if n.kind == "layer" and n.layer is not None else 0.0
    clock: dict = {}
    finish: dict = {}
    waiting = {name: g.in_degree(name) for name in g}
    ready = {name for name, k in waiting.items() if k == 0}
    order = []
    while ready:
        def start(name):
            worker = g.nodes[name]["node"].worker
            t = max((finish[p] for p in g.predecessors(name)), default=0.0)
            return max(t, clock.get(worker, 0.0)), g.nodes[name]["kind"] == "bridge_dst", name
        at, _, name = min(start(name) for name in ready)
        ready.remove(name)
        order.append(g.nodes[name]["node"])
        finish[name] = at + cost[name]
        worker = g.nodes[name]["node"].worker
        if worker is not None:
            clock[worker] = finish[name]
        for nxt in g.successors(name):
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                ready.add(nxt)
    if len(order) != len(g):
        raise InternalError(PASS, "the partitioned graph has a cycle")
    return order


class _WorkerLowering(_Lowering):
    """lower_partitioned's walk over one worker's nodes, bridges made transfers."""

    def __init__(self, program, g, base: Plan, worker: int):
        super().__init__(program, g, base)
        self.worker = worker
        self.order = [n for n in _schedule(g) if n.worker == worker and n.kind != "field"]
        pairs = sorted(n.name for n in payloads(g) if n.kind == "bridge_src")
        self.pair_ids = {name: k for k, name in enumerate(pairs)}
        self.exchanges: list[Exchange] = []

    def forward(self):
        # The trainer reads each loss over the whole batch; this worker writes only the rows
        # of its loss copies, so the rest must be zeros: the mean is then its share of the
        # batch mean, and the group's is the sum of its workers'.
        for out in self.losses.values():
            for buf in (out.loss, out.correct):
                if buf:
                    self.em.declare(buf, self.batch)
                    self.em.fill(buf, self.batch, 0.0, f"zero {buf}")
        super().forward()

    def _exchange(self, n: PartNode, *, send: bool, backward: bool, buffer: str, count: int):
        peer = self.g.nodes[n.pair]["node"].worker
        src = n.name if n.kind == "bridge_src" else n.pair
        self.exchanges.append(Exchange(len(self.em.launches), send, backward, peer,
                                       2 * self.pair_ids[src] + int(backward), buffer, count,
                                       n.dtype, src))

    def _grad_crosses(self, n: PartNode) -> bool:
        """Both ends decide alike whether a gradient comes back over the bridge."""
        return n.dtype == "float32" and self.needs_grad(n.of)

    # ---- forward: send the piece / receive it ---------------------------------------------
    def _forward_bridge(self, n: PartNode):
        if n.kind == "bridge_src":
            self._forward_view(n)                    # the producer's view, checked
            view = self.views[n.name]
            count = n.region.size(view.sample)
            if view.base == n.region:
                buf = view.buf
            else:                                    # a block of it: made contiguous
                buf = self.em.declare(f"xchg:out:{n.name}", count, view.dtype)
                s_off, s_ld, rows, cols = view.block(n.region)
                block_copy(self.em, n.name, view.buf, s_off, s_ld, buf, 0, cols, rows, cols,
                           dtype=view.dtype)
            self._exchange(n, send=True, backward=False, buffer=buf, count=count)
            return
        count = n.region.size(n.sample_shape)
        buf = self.em.declare(f"xchg:in:{n.name}", count, n.dtype)
        self._exchange(n, send=False, backward=False, buffer=buf, count=count)
        self.views[n.name] = View(buf, n.region, n.sample_shape, n.dtype,
                                  f"xchg:grad:{n.name}" if n.dtype == "float32" else None)

    # ---- backward: send the consumers' gradient / receive and add it ----------------------
    def _backward_bridge(self, n: PartNode):
        if not self._grad_crosses(n):
            return
        if n.kind == "bridge_dst":
            view = self.views[n.name]
            if view.gbuf not in self.gwritten:       # no consumer here needed it: zeros
                self.em.declare(view.gbuf, view.size)
                self.em.fill(view.gbuf, view.size, 0.0, n.name)
                self.gwritten.add(view.gbuf)
            self._exchange(n, send=True, backward=True, buffer=view.gbuf, count=view.size)
            return
        count = n.region.size(n.sample_shape)
        buf = self.em.declare(f"xchg:gin:{n.name}", count)
        self._exchange(n, send=False, backward=True, buffer=buf, count=count)
        got = View(buf, n.region, n.sample_shape, n.dtype, None)
        s_off, s_ld, _, _ = got.block(n.region)
        self._write_grad(self.views[n.name], n.region, buf, s_off, s_ld, n.name)


__all__ = ["WorkerPlan", "ModelParallel", "model_parallel", "param_units", "lower_worker"]
