"""SGD applied by the GEMM that computes the gradient, for training in one process.

In SINGA a worker computes a param's gradient and a server applies the update rule.  When
both run on one device and the rule is SGD without clipping, the update is element-wise and
can run where the GEMM computing g (a dense layer's dW) stores it.  Plain SGD,

    w ← w − lr·(grad_scale·g + wd·w) = (1 − lr·wd)·w − lr·grad_scale·g,

is exactly the GEMM's own epilogue C = beta·C + alpha·op(A)·op(B) with C = W, alpha =
−lr·grad_scale and beta = 1 − lr·wd.  With momentum m (SINGA's H = m·H − lr·g; w += H) the
GEMM is built with SINGA_GEMM_MOMENTUM: alpha = grad_scale gives g, and the store does
H = m·H − lr·(g + wd·w), w + H (compiler/gemm.py's UPD_V/UPD_S).  Either way the gradient
never goes to memory: the update kernel's passes over W, g (and H), and the numerics
check's pass over g, disappear.  The GEMM checks what it stores and raises the param's flag
on a NaN or Inf, so the numerics check still names the step and the param
(runtime/numerics.py).

A param's update is fused only where that is the same computation:
* the updater is sgd without clip (every other rule needs g itself);
* exactly one launch of the train list writes the gradient: a GEMM multiply with beta 0
  over the whole gradient (not a k-sliced GEMM, not a gradient two layers add into);
* no launch after it in the train list reads the param (it sees the updated values).
Runs that need the gradient itself keep the separate update: a distributed worker (servers
apply the rule), ``--on-nan skip`` (the check must come before the update), ``--reference``
runs that compare gradients.
"""
from __future__ import annotations

import dataclasses
import math

from singa_dsl.runtime.plan_types import FUSED_FLAGS, BufferDecl, KernelPlan, Launch, ProgramDecl
from singa_dsl.runtime.updaters import ARG_INDEX

from . import gemm
from .plan import FusedUpdate, Plan

UPDATE_DEFINE = "-DSINGA_GEMM_UPDATE"
MOMENTUM_DEFINE = "-DSINGA_GEMM_MOMENTUM"


def fuse_sgd(plan: Plan) -> Plan:
    """``plan`` with every SGD update that can run in its gradient's GEMM moved there (the
    plan itself when none can)."""
    lists = dict(plan.kernels.launch_lists)
    train, update = list(lists.get("train", ())), list(lists.get("update", ()))
    programs = {p.name: p for p in plan.kernels.programs}
    params = {p.key: p for p in plan.params}
    fused, kept = [], []
    for u in plan.updates:
        site = _gemm_site(train, update[u.index], params[u.param])
        if site is None:
            kept.append(u)
            continue
        i, launch = site
        args = update[u.index].args
        momentum = float(args[ARG_INDEX["hyper0"]][1])
        fu = FusedUpdate(u.param, i, gemm.ALPHA_ARG, gemm.BETA_ARG,
                         wd=float(args[ARG_INDEX["wd"]][1]),
                         # the GEMM's own alpha scales its product into the gradient
                         # (CD's 1/B): the rule's grad_scale applies on top
                         grad_scale=float(args[ARG_INDEX["grad_scale"]][1])
                         * float(launch.args[gemm.ALPHA_ARG][1]),
                         flag_slot=len(fused))
        history = args[ARG_INDEX["h"]][1] if momentum > 0 else None
        train[i], lr_arg = _fused_launch(launch, params[u.param], fu, programs, history,
                                         momentum)
        fused.append(dataclasses.replace(fu, lr_arg=lr_arg))
    if not fused:
        return plan
    gone = {u.index for u in plan.updates} - {u.index for u in kept}
    new_update = [launch for j, launch in enumerate(update) if j not in gone]
    renumber = {u.index: new_update.index(update[u.index]) for u in kept}
    lists.update(train=tuple(train), update=tuple(new_update))
    buffers = _live_buffers(plan.kernels.buffers, lists.values())
    buffers.append(BufferDecl(FUSED_FLAGS, 4 * len(fused), "int32"))
    kernels = KernelPlan(tuple(buffers), tuple(programs.values()), tuple(lists.items()))
    return dataclasses.replace(
        plan, kernels=kernels, fused_updates=tuple(fused),
        updates=tuple(dataclasses.replace(u, index=renumber[u.index]) for u in kept))


def _gemm_site(train: list[Launch], update: Launch, param) -> tuple[int, Launch] | None:
    """(index, launch) of the GEMM that can apply ``update`` to ``param``, or None."""
    a = update.args
    sgd = update.kernel == "update_sgd" and \
        not a[ARG_INDEX["clip_hi"]][1] > a[ARG_INDEX["clip_lo"]][1]
    if not sgd:
        return None
    writers = [i for i, launch in enumerate(train) if _names(launch, param.grad)]
    if len(writers) != 1:
        return None
    i = writers[0]
    g = train[i]
    if not gemm.is_multiply(g) or len(g.args) <= gemm.LDC_ARG:
        return None
    whole = (g.args[gemm.C_ARG] == ("buf", param.grad)
             and g.args[gemm.C_OFF_ARG] == ("int", 0)
             and g.args[gemm.BETA_ARG] == ("float", 0.0)
             and g.args[gemm.M_ARG][1] * g.args[gemm.N_ARG][1] == math.prod(param.shape)
             and g.args[gemm.LDC_ARG] == ("int", g.args[gemm.N_ARG][1])
             and param.grad not in (g.args[gemm.A_ARG][1], g.args[gemm.B_ARG][1]))
    if not whole or any(_names(later, param.buffer) for later in train[i + 1:]):
        return None
    return i, g


def _names(launch: Launch, buffer: str) -> bool:
    return any(arg[0] in ("buf", "buf_offset") and arg[1] == buffer for arg in launch.args)


def _fused_launch(launch: Launch, param, fu: FusedUpdate, programs: dict,
                  history: str | None, momentum: float) -> tuple[Launch, int]:
    """The GEMM writing W in place: its program built with SINGA_GEMM_UPDATE (the flag
    arguments; with momentum, SINGA_GEMM_MOMENTUM and the history's), C = W; and the
    argument the runtime sets to lr every step (-1: none, plain SGD sets alpha and beta)."""
    base = programs[launch.program]
    defines = (UPDATE_DEFINE, MOMENTUM_DEFINE) if history else (UPDATE_DEFINE,)
    name = f"{base.name}+{'momentum' if history else 'sgd'}"
    if name not in programs:
        programs[name] = ProgramDecl(name, base.source, (*base.options, *defines),
                                     f"{base.origin} applying SGD"
                                     f"{' with momentum' if history else ''}")
    args = list(launch.args)
    args[gemm.C_ARG] = ("buf", param.buffer)
    args += [("buf", FUSED_FLAGS), ("int", fu.flag_slot)]
    lr_arg = -1
    if history:      # the GEMM gives g (alpha = grad_scale, beta = 0); lr set every step
        args[gemm.ALPHA_ARG] = ("float", fu.grad_scale)
        args += [("buf", history)]
        lr_arg = len(args)
        args += [("float", 0.0), ("float", momentum), ("float", fu.wd)]
    else:
        args[gemm.ALPHA_ARG] = ("float", 0.0)      # −lr·grad_scale, set every step
        args[gemm.BETA_ARG] = ("float", 1.0)       # 1 − lr·wd, set every step
    return dataclasses.replace(launch, program=name, args=tuple(args)), lr_arg


def _live_buffers(buffers, launch_lists) -> list[BufferDecl]:
    """The buffers some launch still names, and every non-gradient one (params, state and
    data are written by the host): a fused param's gradient buffer is dropped."""
    named = {arg[1] for launches in launch_lists for launch in launches
             for arg in launch.args if arg[0] in ("buf", "buf_offset")}
    return [b for b in buffers if not b.name.startswith("pgrad:") or b.name in named]
