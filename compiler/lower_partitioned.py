"""Lowering a partitioned net (``compiler.partition``) to one KernelPlan: every worker of the
group simulated in one process, on one OpenCL device.

The partitioned graph's nodes become launches in its topological order, the backward sweep in
reverse, reusing each op's lowering (``emit_forward``/``emit_backward``) on a *copy* of its
layer: a batch copy ``conv1@0`` is the op at ``rows/g`` samples, a feature copy ``ip1@1`` the
op with ``F/g`` outputs (the attribute that sets the output features is found by re-running
the op's shape and param rules) and its slice of the params.  What the inserted layers do:

* ``slice``, ``split``, ``bridge_src`` and ``bridge_dst`` move no data in one process: each is
  a *view* (buffer, the region of the logical tensor it holds) of what its input holds; a
  bridge's transfer is what the cost model prices, and here it is free;
* ``concate`` copies each piece into place (``block_copy`` in ops/connection.cl: a strided
  block of rows × features);
* a layer copy reads a view directly when the view is exactly the region it needs, else a
  gathered contiguous copy of that region (a batch copy of a data field: its rows).

Gradients follow the same views backward: every consumer writes the part it read into its
producer's gradient buffer — the first writer of a whole buffer overwrites, a part of one is
written after one zero fill, every later writer adds.  A loss copy computes the mean over its
own rows, so its input gradients are scaled by rows/batch on the way back: the step computes
the gradient of the whole batch's mean, as the unpartitioned one does.

Params live once, as the logical params of the unpartitioned plan (``param:ip1.w``), so
updaters, initializers and checkpoints are the unpartitioned plan's.  Batch copies read them
whole and add their gradients (the first copy overwrites, the rest accumulate: SINGA's
ParamEntry with num_local copies).  A feature copy reads and writes its slice in place:
GEMM operands get the slice's element offset and leading dimension; kernels without offset
arguments (bias adds and bias gradients) get a small slice buffer gathered from the param
before first use, and their gradient slice is copied back into place after the launch.

The other phases (test, validate) and the updates are the unpartitioned plan's: evaluation
runs as one worker.  Only BP is partitioned."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import networkx as nx

from singa_dsl.errors import InternalError, SingaConfigError, SingaError
from singa_dsl.runtime.plan_types import KernelPlan
from .emit import LOCAL, BackwardTargets, Emitter
from .lower import _needs_grad, lower_program
from .model import LayerSpec
from .ops import OPS
from .ops.connection_cl import block_copy
from .ops.registry import ShapeProblem, TensorInfo
from .partition_regions import Region, computes_whole, features, full
from .partition_types import ParamPart, PartNode, payloads
from .plan import Plan

PASS = "lower_partitioned"


@dataclass(frozen=True)
class View:
    """Where a node's output lives: ``buf`` holds the region ``base`` of the logical tensor
    (rows × features, row-major, per-sample shape ``sample``); ``gbuf`` is its gradient, laid
    out alike (None for data and integer tensors)."""
    buf: str
    base: Region
    sample: tuple
    dtype: str
    gbuf: str | None

    @property
    def size(self) -> int:
        return self.base.size(self.sample)

    def block(self, region: Region) -> tuple[int, int, int, int]:
        """(element offset, leading dim, rows, columns) of ``region`` inside the buffer."""
        if not self.base.contains(region):
            raise InternalError(PASS, f"region {region} is not inside the {self.base} that "
                                f"{self.buf} holds")
        inner = math.prod(self.sample[1:]) if self.sample else 1
        ld = self.base.nfeats * inner
        off = (region.rows[0] - self.base.rows[0]) * ld + \
            (region.feats[0] - self.base.feats[0]) * inner
        return off, ld, region.nrows, region.nfeats * inner


@dataclass(frozen=True)
class OutputPart:
    """A part of a layer's output the executor can read back (tests, debugging)."""
    buffer: str
    base: tuple            # ((row0, row1), (feat0, feat1)) the buffer holds
    region: tuple          # the part of it this copy computed
    sample: tuple
    dtype: str


@dataclass(frozen=True)
class PartitionedPlan:
    plan: Plan                         # runs with the ordinary Trainer / Executor
    graph: nx.DiGraph                  # the partitioned graph it executes
    workers: int
    outputs: dict                      # logical layer → tuple of OutputPart


def lower_partitioned(program, workers: int | None = None, dims=None, device=None, *,
                      graph: nx.DiGraph | None = None) -> PartitionedPlan:
    """The program's train step partitioned over ``workers`` per group (default: its cluster
    block's), every worker in one plan.  ``dims`` overrides layers' dimensions, ``device``
    is the cost model's (for ``auto``); ``graph`` is an already partitioned graph."""
    from .partition import partition_program
    kind = program.algorithm.kind if program.algorithm else "?"
    if kind != "bp":
        raise SingaConfigError(f"only bp training runs partitioned; this job uses {kind}",
                               program.algorithm.span if program.algorithm else None)
    g = graph if graph is not None else partition_program(program, workers, dims, device)
    base = lower_program(program)
    try:
        low = _Lowering(program, g, base)
        low.forward()
        low.backward()
    except SingaError as e:
        raise e.with_source(program.source)
    return PartitionedPlan(_assemble(base, low.em), g, g.graph["workers"], low.outputs)


# ---- the emitter: copies of layers, their bindings and their param slices --------------------
class _PartEmitter(Emitter):
    """An Emitter whose layers are partition copies: sources are bindings chosen by the
    lowering, params are the logical ones (or a slice of them, by offset)."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.copies: dict[str, PartNode] = {}
        self.bind: dict[tuple[str, int], tuple[str, str | None]] = {}
        self.virtual: dict[str, tuple] = {}      # slice name → (kind, owner ParamSpec, part)
        self.gathered: set[str] = set()
        self.pacc: dict[str, bool] = {}          # pgrad slice name → accumulate (this op)

    def source(self, layer, i):
        return self.bind[layer.name, i][0]

    def source_grad(self, layer, i):
        grad = self.bind[layer.name, i][1]
        if grad is None:
            raise InternalError(PASS, f"{layer.name} asks for the gradient of source {i}, "
                                "which needs none")
        return grad

    def owner(self, layer, slot):
        n = self.copies.get(layer.name)
        return super().owner(n.layer if n is not None else layer, slot)

    def param(self, layer, slot):
        return self._param(layer, slot, "param")

    def pgrad(self, layer, slot):
        return self._param(layer, slot, "pgrad")

    def _param(self, layer, slot, kind):
        n = self.copies[layer.name]
        owner, _ = super().owner(n.layer, slot)
        part = next(p for p in n.params if p.key == f"{n.layer.name}.{slot}")
        if part.axis is None:
            return f"{kind}:{owner.key}"
        name = f"{kind}@{part.name}"
        self.virtual[name] = (kind, owner, part)
        return name

    def gemm(self, tag, **kw):
        """GEMM operands that are param slices become the logical param at an offset."""
        for x in ("a", "b", "c"):
            if kw.get(x) in self.virtual:
                kind, owner, part = self.virtual[kw[x]]
                off, ld = _slice_origin(owner.shape, part)
                kw[x] = f"{kind}:{owner.key}"
                kw[f"{x}_offset"] = kw.get(f"{x}_offset", 0) + off
                if part.axis != 0:
                    kw[f"ld{x}"] = ld
        if kw.get("bias") in self.virtual:
            kind, owner, part = self.virtual[kw["bias"]]
            kw["bias"] = f"{kind}:{owner.key}"
            kw["bias_offset"] = kw.get("bias_offset", 0) + _slice_origin(owner.shape, part)[0]
        super().gemm(tag, **kw)

    def launch(self, family, kernel, items, args, tag, local=LOCAL):
        """Other kernels take whole buffers: a param slice is gathered into a buffer of its
        own before first use; a gradient slice is written there and copied into place."""
        new, after = [], []
        for a in args:
            if a[0] == "buf" and a[1] in self.virtual:
                kind, owner, part = self.virtual[a[1]]
                mat = self.declare(f"slice:{a[1]}", part.size)
                logical = f"{kind}:{owner.key}"
                off, ld, rows, cols = _param_block(owner.shape, part)
                if kind == "param":
                    if mat not in self.gathered:
                        self.gathered.add(mat)
                        block_copy(self, tag, logical, off, ld, mat, 0, cols, rows, cols)
                else:
                    acc = self.pacc.get(a[1], False)
                    if acc:       # the kernel adds into the slice buffer: start it at zero
                        self.fill(mat, part.size, 0.0, tag)
                    after.append((mat, logical, off, ld, rows, cols, acc))
                a = ("buf", mat)
            new.append(a)
        super().launch(family, kernel, items, tuple(new), tag, local)
        for mat, logical, off, ld, rows, cols, acc in after:
            block_copy(self, tag, mat, 0, cols, logical, off, ld, rows, cols, acc=acc)


def _slice_origin(shape, part: ParamPart) -> tuple[int, int]:
    """(element offset, row length) of a param slice inside the whole param, as a matrix
    whose rows are its first axis."""
    row = math.prod(shape[1:])
    if part.axis == 0:
        return part.start * row, row
    if part.axis == 1 and len(shape) == 2:
        return part.start, shape[1]
    raise InternalError(PASS, f"cannot address slice {part.name} (axis {part.axis} of "
                        f"{list(shape)})")


def _param_block(shape, part: ParamPart) -> tuple[int, int, int, int]:
    """(offset, leading dim, rows, columns) of a param slice, as a block copy."""
    off, ld = _slice_origin(shape, part)
    if part.axis == 0:
        return off, part.size, 1, part.size
    return off, ld, shape[0], part.stop - part.start


# ---- the lowering ---------------------------------------------------------------------------
class _Lowering:
    def __init__(self, program, g, base: Plan):
        self.program, self.g = program, g
        self.batch = g.graph["batch"]
        train = base.phase("train")
        self.losses = {l.layer: l for l in train.losses}
        params = {p.key: p for p in program.net.params}
        self.params = params
        self.em = _PartEmitter(self.batch, "train", params,
                               {f.field: f.buffer for f in train.feeds}, program.job.seed)
        self.em.extras["train"] = True
        self.views: dict[str, View] = {}
        for f in train.feeds:
            self.em.declare(f.buffer, math.prod(f.shape), f.dtype)
            sample = tuple(f.shape[1:])
            self.views[f.field] = View(f.buffer, full(self.batch, sample), sample, f.dtype, None)
        self.order = [n for n in payloads(g) if n.kind != "field"]
        self.specs: dict[str, LayerSpec] = {}
        self.links: dict[tuple[str, int], tuple] = {}
        self.concates: set[str] = set()
        self.gwritten: set[str] = set()
        self.pwritten: dict[str, list] = {}
        self.outputs: dict[str, tuple] = {}
        self.needs = {}
        self._check_params()

    def needs_grad(self, name: str) -> bool:
        if name not in self.needs:
            self.needs[name] = _needs_grad(self.program, name)
        return self.needs[name]

    def _check_params(self):
        shared = {p.share_of for p in self.program.net.params if p.share_of}
        for n in self.order:
            for part in n.params:
                p = self.params[part.key]
                if part.axis is not None and (p.share_of or p.key in shared):
                    raise SingaConfigError(
                        f"layer '{n.of}' is split on its features, and its param {p.key} is "
                        "shared with another layer: the partitioned executor cannot run that "
                        "yet", n.span,
                        "partition the layer on the batch (@batch)")

    # ---- forward --------------------------------------------------------------------
    def forward(self):
        for n in self.order:
            if n.kind == "layer":
                self._forward_layer(n)
            elif n.kind == "concate" and not self._is_view(n):
                self._forward_concate(n)
            elif n.kind in ("bridge_src", "bridge_dst"):
                self._forward_bridge(n)
            else:                              # slice, split: a view
                self._forward_view(n)

    def _forward_view(self, n: PartNode):
        if len(n.inputs) != 1:
            raise InternalError(PASS, f"{n.name} has {len(n.inputs)} inputs")
        view = self.views[n.inputs[0].node]
        if not view.base.contains(n.region):
            raise InternalError(PASS, f"{n.name} holds {n.region}, its input only "
                                f"{view.base}")
        self.views[n.name] = view

    def _forward_bridge(self, n: PartNode):
        """Both ends of a bridge are views here: one process, the transfer is free
        (lower_worker, one worker per process, makes them transfers)."""
        self._forward_view(n)

    def _backward_bridge(self, n: PartNode):
        """A bridge's gradient goes back through the view: nothing to emit here."""

    def _is_view(self, n: PartNode) -> bool:
        return len(n.inputs) == 1 and self.views[n.inputs[0].node].base.contains(n.region)

    def _forward_concate(self, n: PartNode):
        em = self.em
        buf = em.declare(f"train:act:{n.name}", n.region.size(n.sample_shape), n.dtype)
        view = View(buf, n.region, n.sample_shape, n.dtype,
                    f"train:grad:{n.name}" if n.dtype == "float32" else None)
        for inp in n.inputs:
            src = self.views[inp.node]
            s_off, s_ld, rows, cols = src.block(inp.region)
            d_off, d_ld, _, _ = view.block(inp.region)
            block_copy(em, n.name, src.buf, s_off, s_ld, buf, d_off, d_ld, rows, cols,
                       dtype=n.dtype)
        self.views[n.name] = view
        self.concates.add(n.name)

    def _forward_layer(self, n: PartNode):
        em, op = self.em, OPS[n.layer.op]
        if op.emit_forward is None or op.emit_backward is None:
            raise SingaConfigError(f"op {n.layer.op} has no OpenCL kernels yet", n.span)
        spec = _copy_spec(n, self.params)
        self.specs[n.name] = spec
        em.copies[n.name] = n
        alpha = n.region.nrows / self.batch if op.role == "loss" else 1.0
        for k, inp in enumerate(n.inputs):
            src = self.views[inp.node]
            if src.base == inp.region:
                act = src.buf
            else:                              # gather the region it reads
                act = em.declare(f"train:in:{n.name}#{k}", inp.region.size(src.sample),
                                 src.dtype)
                s_off, s_ld, rows, cols = src.block(inp.region)
                block_copy(em, n.name, src.buf, s_off, s_ld, act, 0, cols, rows, cols,
                           dtype=src.dtype)
            grad, private = None, False
            if src.gbuf is not None and self.needs_grad(inp.of):
                private = act != src.buf or alpha != 1.0
                grad = f"train:gin:{n.name}#{k}" if private else src.gbuf
            em.bind[n.name, k] = (act, grad)
            self.links[n.name, k] = (src, inp.region, private, alpha)
        em.batch, em.row0 = n.region.nrows, n.region.rows[0]   # random draws: global rows
        op.emit_forward(em, spec)
        base = n.region
        if computes_whole(n.layer.op, n.layer.attrs, n.dim):
            base = Region(n.region.rows, (0, features(n.layer.out.shape)))
        buf = em.act(n.name)
        if op.role == "loss" and em.extras.get(n.name, {}).get("loss"):
            buf = em.extras[n.name]["loss"]          # a loss's output: its per-sample losses
        view = View(buf, base, n.sample_shape, n.dtype,
                    em.grad(n.name) if n.dtype == "float32" else None)
        self.views[n.name] = view
        self.outputs.setdefault(n.of, ())
        self.outputs[n.of] += (OutputPart(view.buf, (base.rows, base.feats),
                                          (n.region.rows, n.region.feats), n.sample_shape,
                                          n.dtype),)
        if op.role == "loss" and n.of in self.losses:
            self._gather_losses(n)

    def _gather_losses(self, n: PartNode):
        """The copies' per-sample losses (and hits) into the whole batch's buffers the
        trainer reads."""
        facts, out = self.em.extras.get(n.name, {}), self.losses[n.of]
        r0, rows = n.region.rows[0], n.region.nrows
        for key, dst in (("loss", out.loss), ("correct", out.correct)):
            if facts.get(key) and dst:
                self.em.declare(dst, self.batch)
                block_copy(self.em, n.name, facts[key], 0, rows, dst, r0, rows, 1, rows)

    # ---- backward -------------------------------------------------------------------
    def backward(self):
        for n in reversed(self.order):
            if n.kind == "layer":
                self._backward_layer(n)
            elif n.name in self.concates:
                self._backward_concate(n)
            elif n.kind in ("bridge_src", "bridge_dst"):
                self._backward_bridge(n)

    def _write_grad(self, dst: View, region: Region, src: str, s_off: int, s_ld: int,
                    tag: str, alpha: float = 1.0):
        """Add a part's gradient into its producer's gradient buffer (the first whole write
        overwrites; a first partial one zero-fills the buffer first)."""
        em = self.em
        em.declare(dst.gbuf, dst.size)
        d_off, d_ld, rows, cols = dst.block(region)
        if dst.gbuf in self.gwritten:
            acc = True
        elif region == dst.base:
            acc = False
        else:
            em.fill(dst.gbuf, dst.size, 0.0, tag)
            acc = True
        self.gwritten.add(dst.gbuf)
        block_copy(em, tag, src, s_off, s_ld, dst.gbuf, d_off, d_ld, rows, cols, acc=acc,
                   alpha=alpha)

    def _backward_concate(self, n: PartNode):
        view = self.views[n.name]
        if view.gbuf not in self.gwritten or not self.needs_grad(n.of):
            return
        for inp in n.inputs:
            src = self.views[inp.node]
            if src.gbuf is None:
                continue
            s_off, s_ld, _, _ = view.block(inp.region)
            self._write_grad(src, inp.region, view.gbuf, s_off, s_ld, n.name)

    def _backward_layer(self, n: PartNode):
        em, op = self.em, OPS[n.layer.op]
        view = self.views[n.name]
        if op.role != "loss" and view.gbuf not in self.gwritten:
            return                     # nothing downstream needs this copy's gradient
        dx, dacc = [], []
        for k, inp in enumerate(n.inputs):
            src, region, private, _ = self.links[n.name, k]
            grad = em.bind[n.name, k][1]
            dx.append(grad is not None)
            if grad is None:
                dacc.append(False)
            elif private:
                em.declare(grad, region.size(src.sample))
                dacc.append(False)
            else:
                em.declare(grad, src.size)
                dacc.append(grad in self.gwritten)
                self.gwritten.add(grad)
        em.pacc = {}
        pacc = {}
        for part in n.params:
            p = self.params[part.key]
            key = p.share_of or p.key
            seen = self.pwritten.setdefault(key, [])
            here = None if part.axis is None else (part.axis, part.start, part.stop)
            if here is None and any(r is not None for r in seen):
                raise InternalError(PASS, f"param {key} is written whole after in slices")
            acc = any(r is None or here is None or
                      (r[0] == here[0] and r[1] < here[2] and here[1] < r[2]) for r in seen)
            seen.append(here)
            pacc[f"{n.name}.{p.slot}"] = acc
            if here is not None:
                em.pacc[f"pgrad@{part.name}"] = acc
        em.batch, em.row0 = n.region.nrows, n.region.rows[0]   # random draws: global rows
        op.emit_backward(em, self.specs[n.name], BackwardTargets(tuple(dx), tuple(dacc), pacc))
        em.pacc = {}
        for k, inp in enumerate(n.inputs):
            src, region, private, alpha = self.links[n.name, k]
            grad = em.bind[n.name, k][1]
            if grad is not None and private:
                cols = region.size(src.sample) // max(1, region.nrows)
                self._write_grad(src, region, grad, 0, cols, n.name, alpha)


# ---- a layer copy as a LayerSpec the op lowerings understand ----------------------------------
def _copy_spec(n: PartNode, params: dict) -> LayerSpec:
    """The layer as its copy computes it: the copy's name, the per-sample shapes of the parts
    it reads and computes, and (for a feature copy of a layer with params) the attribute that
    sets its output features changed to its share — found by re-running the op's shape and
    param rules, which must then give the copy's param slices."""
    layer = n.layer
    op = OPS[layer.op]
    ins = []
    for k, inp in enumerate(n.inputs):
        t = layer.in_shapes[k]
        shape = tuple(t.shape)
        if shape and inp.region.nfeats != shape[0]:
            shape = (inp.region.nfeats,) + shape[1:]
        ins.append(TensorInfo(shape, t.dtype))
    ins = tuple(ins)
    out = tuple(layer.out.shape)
    if not computes_whole(layer.op, layer.attrs, n.dim) and out and n.region.nfeats != out[0]:
        out = (n.region.nfeats,) + out[1:]
    want = TensorInfo(out, layer.out.dtype)

    def fits(attrs) -> bool:
        try:
            got = op.infer(attrs, ins)
            slots = {s.name: tuple(s.shape) for s in op.params(attrs, ins, got)}
        except (ShapeProblem, KeyError, ValueError):
            return False
        return tuple(got.shape) == out and all(
            slots.get(params[p.key].slot) == tuple(p.shape) for p in n.params)

    attrs = layer.attrs
    if not fits(attrs):
        f = features(layer.out.shape)
        tries = [dict(attrs, **{k: out[0]}) for k, v in attrs.items()
                 if type(v) is int and v == f]
        tries = [a for a in tries if fits(a)]
        if len(tries) != 1:
            raise InternalError(PASS, f"cannot make {layer.op} copy {n.name} compute "
                                f"{list(out)} from {[list(t.shape) for t in ins]}")
        attrs = tries[0]
    return dataclasses.replace(layer, name=n.name,
                               sources=tuple(f"{n.name}#{k}" for k in range(len(ins))),
                               attrs=attrs, in_shapes=ins, out=want, params=())


# ---- the plan -------------------------------------------------------------------------------
def _assemble(base: Plan, em: Emitter, keep=()) -> Plan:
    """The unpartitioned plan with its train list replaced by the partitioned step; buffers
    and programs only the old train list used are dropped (``keep``: buffers the host uses,
    e.g. a worker's exchange buffers)."""
    lists = {name: tuple(ls) for name, ls in base.kernels.launch_lists}
    lists["train"] = tuple(em.launches)
    buffers = {b.name: b for b in base.kernels.buffers}
    for b in em.buffers.values():
        if b.name not in buffers or buffers[b.name].nbytes < b.nbytes:
            buffers[b.name] = b
    used = {"dummy", "rng:step", *keep}
    used |= {a[1] for ls in lists.values() for l in ls for a in l.args
             if a[0] in ("buf", "buf_offset")}
    for p in base.params:
        used |= {p.buffer, p.grad, *p.state}
    for ph in base.phases:
        used |= {f.buffer for f in ph.feeds}
        used |= {x for l in ph.losses for x in (l.loss, l.correct) if x}
    names = {l.program for ls in lists.values() for l in ls}
    programs = [p for p in (*base.kernels.programs, *em.programs.values()) if p.name in names]
    kernels = KernelPlan.build([b for b in buffers.values() if b.name in used], programs, lists)
    return dataclasses.replace(base, kernels=kernels)
