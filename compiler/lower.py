"""Lowering a checked BP program to a Plan: forward launches in topological order, the
backward graph from each op's gradient rule in reverse order, one updater launch per owned
param, and a forward-only list per evaluation phase (its own batch size, shared params).

Gradient buffers are written by the first consumer to reach them in the backward sweep and
accumulated into by the rest, so a tensor feeding several layers needs no split layer and
no zeroing pass.
"""
from __future__ import annotations

import contextvars
import dataclasses
from collections import Counter

from singa_dsl.errors import InternalError, SingaConfigError
from singa_dsl.runtime import updaters as upd
from singa_dsl.runtime.plan_types import KernelPlan, Launch, ProgramDecl
from .emit import BackwardTargets, Emitter
from .gemm import ACTIVATIONS
from .model import Every, ParamSpec
from .ops import OPS
from .plan import Feed, LossOut, ParamEntry, PhasePlan, Plan, UpdateLaunch
from .program import CheckedProgram

EVAL_PHASES = ("test", "validate")


# One lowering per training algorithm (SINGA's TrainOneBatch kinds): name → function that
# emits a phase's launches after the forward pass (BP: the backward sweep).
ALGORITHM_LOWERINGS: dict = {}

# (first row, global batch) of the train phase while lowering one distributed worker's plan
# (``singa_dsl.run.plan_with_train_batch``); None: the plan computes the whole batch.
TRAIN_ROWS: contextvars.ContextVar = contextvars.ContextVar("train_rows", default=None)


def lower_program(program: CheckedProgram) -> Plan:
    kind = program.algorithm.kind if program.algorithm else "?"
    if kind not in ALGORITHM_LOWERINGS:
        raise SingaConfigError(f"algorithm {kind} cannot be compiled to OpenCL yet",
                               program.algorithm.span if program.algorithm else None)
    return ALGORITHM_LOWERINGS[kind](program)


def lower_bp(program: CheckedProgram) -> Plan:
    return lower_with(program, _emit_backward)


def lower_with(program: CheckedProgram, emit_train_step, *, emit_eval_step=None,
               emit_prologue=None, updated=None, metric: dict | None = None) -> Plan:
    """Forward lists per phase; ``emit_train_step(program, em)`` adds what the train phase
    does after its forward pass (the backward sweep, for BP).  Optional hooks for the other
    algorithms: ``emit_eval_step(program, em, phase)`` after an evaluation phase's forward
    pass, ``emit_prologue(program, em, phase)`` before any phase's forward pass;
    ``updated(param)`` says which owned params get an updater launch (default: all);
    ``metric`` is copied into the Plan (how the runtime reports the losses).  Launches an
    emitter sends to other lists (``em.into("init")``) are appended to those lists."""
    params = {p.key: p for p in program.net.params}
    block = _data_block(program)
    buffers, programs, lists, phases = {}, {}, {}, []
    side: dict[str, list] = {}
    for phase in ("train",) + EVAL_PHASES:
        source = program.data[block].phases.get(phase)
        if source is None:
            continue
        em = _emit_phase(program, phase, source.args["batch"], block, params, emit_train_step,
                         emit_eval_step, emit_prologue)
        for name, decl in em.buffers.items():   # phases share names: keep the largest
            if name not in buffers or buffers[name].nbytes < decl.nbytes:
                buffers[name] = decl
        programs.update(em.programs)
        lists[phase] = em.launches
        for name, launches in em.side_lists.items():
            side.setdefault(name, []).extend(launches)
        phases.append(PhasePlan(phase, source.args["batch"], block, _feeds(em, program, block,
                                                                           phase),
                                phase, _losses(em, program)))
    update_launches, updates, state_buffers = _updates(program, params, updated)
    lists["update"] = update_launches
    lists.update(side)
    programs["updaters"] = ProgramDecl("updaters", upd.kernel_source(), ("-cl-mad-enable",),
                                       "updater kernels")
    entries = []
    for p in program.net.params:
        if p.share_of is not None:
            continue
        buffers.setdefault(f"param:{p.key}", _decl(f"param:{p.key}", p.size))
        buffers.setdefault(f"pgrad:{p.key}", _decl(f"pgrad:{p.key}", p.size))
        for s in state_buffers.get(p.key, ()):
            buffers.setdefault(s, _decl(s, p.size))
        entries.append(ParamEntry(p.key, p.store_name, p.shape,
                                  None if p.init is None else {"kind": p.init.kind,
                                                               "args": _plain(p.init.args)},
                                  p.fan_in, p.fan_out, p.lr_scale, p.wd_scale,
                                  f"param:{p.key}", f"pgrad:{p.key}",
                                  tuple(state_buffers.get(p.key, ()))))
    buffers.setdefault("dummy", _decl("dummy", 16))
    kernels = KernelPlan.build(buffers.values(), programs.values(), lists)
    return Plan(job=_job_json(program), data=_data_json(program), updater=program.updater.to_json(),
                algorithm={"kind": program.algorithm.kind, "args": program.algorithm.args},
                cluster=dataclasses.asdict(dataclasses.replace(program.cluster)) | {"span": None},
                params=tuple(entries), phases=tuple(phases), updates=tuple(updates),
                kernels=kernels, metric=metric)


def _decl(name, n):
    from singa_dsl.runtime.plan_types import BufferDecl
    return BufferDecl(name, max(4, n * 4), "float32")


def _data_block(program: CheckedProgram) -> str:
    blocks = {s.split(".")[0] for l in program.net.layers for s in l.sources
              if "." in s and s.split(".")[0] in program.data}
    if len(blocks) != 1:
        raise SingaConfigError("the net must read exactly one data block "
                               f"(it reads {', '.join(sorted(blocks)) or 'none'})")
    block = blocks.pop()
    if "train" not in program.data[block].phases:
        raise SingaConfigError(f"data {block} has no train source", program.data[block].span)
    return block


def _emit_phase(program, phase: str, batch: int, block: str, params, emit_train_step,
                emit_eval_step=None, emit_prologue=None) -> Emitter:
    spec = program.data[block].phases["train"]
    fields = {f"{block}.{name}": f"{phase}:data:{block}.{name}" for name in spec.fields}
    em = Emitter(batch, phase, params, fields, program.job.seed)
    if phase == "train" and TRAIN_ROWS.get() is not None:
        em.row0, em.rows_total = TRAIN_ROWS.get()
    for name, (shape, dtype) in spec.fields.items():
        n = batch
        for d in shape:
            n *= d
        em.declare(fields[f"{block}.{name}"], n, dtype)
    if emit_prologue is not None:
        emit_prologue(program, em, phase)
    em.epilogue_candidates = epilogue_activations(program.net)
    for layer in program.net.layers:
        op = OPS[layer.op]
        if op.emit_forward is None:
            raise SingaConfigError(f"op {layer.op} has no OpenCL kernels yet", layer.span)
        em.extras.setdefault("train", phase == "train")
        op.emit_forward(em, layer)
    if phase == "train":
        emit_train_step(program, em)
    elif emit_eval_step is not None:
        emit_eval_step(program, em, phase)
    return em


# Activations a producer's kernel can apply as it stores (a dense layer's GEMM all of them; a
# convolution relu): their backward needs only their output, which the producer then writes.
EPILOGUE_ACTIVATIONS = tuple(ACTIVATIONS)


def epilogue_activations(net) -> dict:
    """producer name → the activation layer that is the only reader of its output (a leaky
    relu is not: its slope is not an epilogue's).  The producer's output buffer is then never
    needed: its backward reads its inputs, the activation's backward its own output."""
    readers = Counter(s for layer in net.layers for s in layer.sources)
    return {layer.sources[0]: layer for layer in net.layers
            if layer.op in EPILOGUE_ACTIVATIONS and len(layer.sources) == 1
            and readers[layer.sources[0]] == 1 and not layer.attrs.get("slope")}


def _emit_backward(program, em: Emitter, emit_layer=None):
    """The backward sweep; ``emit_layer(op, em, layer, targets)``, when given, emits each
    layer's backward instead of ``op.emit_backward`` (bptt adapts the losses)."""
    written: set[str] = set()          # activation-gradient buffers produced so far
    written_params: set[str] = set()
    for layer in reversed(program.net.layers):
        op = OPS[layer.op]
        if op.role != "loss" and em.grad(layer.name) not in written:
            continue                   # nothing downstream needs this layer's gradient
        dx, acc = [], []
        for i, s in enumerate(layer.sources):
            need = s not in em.field_buffers and _needs_grad(program, s)
            dx.append(need)
            acc.append(em.grad(s) in written)
            if need:
                written.add(em.grad(s))
                em.declare(em.grad(s), em.batch * program.net.layer(s).out.size)
        pacc = {}
        for p in layer.params:
            owner = p.share_of or p.key
            pacc[p.key] = owner in written_params
            written_params.add(owner)
        if op.emit_backward is None:
            raise InternalError("lower", f"op {layer.op} has no backward lowering")
        targets = BackwardTargets(tuple(dx), tuple(acc), pacc)
        if emit_layer is not None:
            emit_layer(op, em, layer, targets)
        else:
            op.emit_backward(em, layer, targets)


def _needs_grad(program, layer_name: str) -> bool:
    """A layer needs its output gradient if it, or anything it reads, has params."""
    memo = {}
    names = {l.name for l in program.net.layers}

    def visit(name):
        if name in memo:
            return memo[name]
        if name not in names:
            return False
        layer = program.net.layer(name)
        memo[name] = bool(layer.params) or any(visit(s) for s in layer.sources)
        return memo[name]
    return visit(layer_name)


def _feeds(em, program, block, phase) -> tuple[Feed, ...]:
    spec = program.data[block].phases["train"]
    return tuple(Feed(f"{block}.{name}", em.field_buffers[f"{block}.{name}"],
                      (em.batch,) + tuple(shape), dtype)
                 for name, (shape, dtype) in spec.fields.items())


def _losses(em, program) -> tuple[LossOut, ...]:
    out = []
    for layer in program.net.layers:
        facts = em.extras.get(layer.name)
        if isinstance(facts, dict) and "loss" in facts:
            out.append(LossOut(layer.name, layer.op, facts["loss"], facts.get("correct")))
    return tuple(out)


def _updates(program, params, updated=None):
    spec = program.updater
    defn = spec.definition
    launches, updates, states = [], [], {}
    for p in program.net.params:
        if p.share_of is not None or (updated is not None and not updated(p)):
            continue
        used = defn.state_for(spec.args)
        names = [f"state:{s}:{p.key}" for s in used]
        states[p.key] = names
        h = names[0] if len(names) > 0 else "dummy"
        u = names[1] if len(names) > 1 else "dummy"
        a = upd.kernel_args(spec, 0, p.lr_scale, p.wd_scale, 1.0)
        gsize, lsize = upd.launch_size(p.size)
        args = (("buf", f"param:{p.key}"), ("buf", f"pgrad:{p.key}"), ("buf", h), ("buf", u),
                ("int", p.size), ("float", a["lr"]), ("float", a["wd"]),
                ("float", a["grad_scale"]), ("float", a["clip_lo"]), ("float", a["clip_hi"]),
                ("float", a["hyper0"]), ("float", a["hyper1"]), ("float", a["delta"]))
        updates.append(UpdateLaunch(p.key, len(launches), upd.ARG_INDEX["lr"]))
        launches.append(Launch("updaters", defn.kernel_name, (gsize,), (lsize,), args,
                               f"update {p.key}"))
    return launches, updates, states


def _every(e: Every | None):
    return None if e is None else {"every": e.every, "after": e.after, "batches": e.batches}


def _job_json(program) -> dict:
    j = program.job
    return {"name": j.name, "steps": j.steps, "test": _every(j.test),
            "validate": _every(j.validate), "display": _every(j.display),
            "checkpoint": _every(j.checkpoint), "workspace": j.workspace,
            "init_from": list(j.init_from), "seed": j.seed, "file": program.file}


def _data_json(program) -> dict:
    return {name: {phase: {"kind": s.kind, "args": _plain(s.args), "base_dir": s.base_dir}
                   for phase, s in spec.phases.items()} for name, spec in program.data.items()}


def _plain(v):
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    return v


ALGORITHM_LOWERINGS["bp"] = lower_bp

# The other algorithms register themselves (cd: lower_cd.py, bptt: lower_bptt.py).
from . import lower_bptt, lower_cd  # noqa: E402,F401
