"""OpenCL lowering of lrn, softmax and batchnorm (kernels in norm.cl).

batchnorm keeps its running averages in buffers shared by every phase:
``bn:mean:<layer>``, ``bn:var:<layer>`` (float32, C each) and ``bn:init:<layer>`` (one int32).
The train forward moves the averages and then sets the flag; while the flag is 0 the averages
count as mean 0 / variance 1 (training) and evaluation uses the batch statistics, as the
numpy reference does.  The flag is zeroed by the plan's "init" launch list (which the trainer
runs before training and after restoring a checkpoint); a checkpoint that should carry the
running averages must save ``bn:mean:*``/``bn:var:*``/``bn:init:*`` and write them back after
"init" has run.
"""
from __future__ import annotations

import math

from ..emit import BackwardTargets, Emitter, b, f, i
from .registry import attach_lowering

BN_PREFIX = "bn:"              # running-stat buffers: not per phase, not params


# ---- lrn ----------------------------------------------------------------------------------

def _lrn_dims(em: Emitter, layer):
    shape = layer.in_shapes[0].shape
    c = shape[0]
    hw = math.prod(shape[1:])
    before = (layer.attrs["size"] - 1) // 2
    return c, hw, em.batch * layer.out.size, before, layer.attrs["size"] - 1 - before


LRN_LOCAL = (1, 8)


def _lrn_grid(hw: int, n: int) -> tuple[int, int]:
    """Work-items: (blocks of 8 pixels of a plane, planes = batch·channels)."""
    return -(-hw // 8), n // hw


def _scale(em: Emitter, layer, n: int) -> str:
    """s and s^(−beta) per element, kept from the forward for the backward."""
    return em.declare(f"{em.prefix}:scale:{layer.name}", 2 * n)


def lrn_forward(em: Emitter, layer):
    c, hw, n, before, after = _lrn_dims(em, layer)
    a = layer.attrs
    y = em.declare(em.act(layer.name), n)
    em.launch("norm", "lrn_fwd", _lrn_grid(hw, n),
              (b(em.source(layer, 0)), b(y), b(_scale(em, layer, n)), i(c), i(hw), i(n),
               i(before), i(after), f(a["alpha"] / a["size"]), f(a["beta"]), f(a["k"])),
              layer.name, local=LRN_LOCAL)


def lrn_backward(em: Emitter, layer, t: BackwardTargets):
    if not t.dx[0]:
        return
    c, hw, n, before, after = _lrn_dims(em, layer)
    a = layer.attrs
    em.launch("norm", "lrn_bwd", _lrn_grid(hw, n),
              (b(em.source(layer, 0)), b(em.act(layer.name)), b(_scale(em, layer, n)),
               b(em.grad(layer.name)), b(em.source_grad(layer, 0)), i(c), i(hw), i(n),
               i(before), i(after), f(2.0 * a["alpha"] * a["beta"] / a["size"]),
               f(a["beta"]), i(int(t.dx_accumulate[0]))), layer.name, local=LRN_LOCAL)


# ---- softmax --------------------------------------------------------------------------------

def softmax_forward(em: Emitter, layer):
    d = layer.out.size
    y = em.declare(em.act(layer.name), em.batch * d)
    em.launch("norm", "softmax_fwd", em.batch, (b(em.source(layer, 0)), b(y), i(em.batch), i(d)),
              layer.name, local=8)


def softmax_backward(em: Emitter, layer, t: BackwardTargets):
    if not t.dx[0]:
        return
    d = layer.out.size
    em.launch("norm", "softmax_bwd", em.batch,
              (b(em.act(layer.name)), b(em.grad(layer.name)), b(em.source_grad(layer, 0)),
               i(em.batch), i(d), i(int(t.dx_accumulate[0]))), layer.name, local=8)


# ---- batchnorm ------------------------------------------------------------------------------

def _bn_dims(em: Emitter, layer):
    shape = layer.in_shapes[0].shape
    return shape[0], math.prod(shape[1:]), em.batch * layer.out.size


def running_buffers(layer_name: str) -> tuple[str, str, str]:
    """(mean, var, init flag) buffer names of a batchnorm layer's running averages."""
    return (f"{BN_PREFIX}mean:{layer_name}", f"{BN_PREFIX}var:{layer_name}",
            f"{BN_PREFIX}init:{layer_name}")


def _stat(em: Emitter, layer, c: int) -> str:
    return em.declare(f"{em.prefix}:bnstat:{layer.name}", 2 * c)


def bn_forward(em: Emitter, layer):
    c, s, n = _bn_dims(em, layer)
    mean, var, init = running_buffers(layer.name)
    em.declare(mean, c)
    em.declare(var, c)
    em.declare(init, 1, "int32")
    stat = _stat(em, layer, c)
    train = em.prefix == "train"
    x = em.source(layer, 0)
    em.launch("norm", "bn_stats", c,
              (b(x), b(stat), b(mean), b(var), b(init), i(em.batch), i(c), i(s),
               f(layer.attrs["momentum"]), i(0 if train else 1)), layer.name, local=8)
    if train:
        with em.into("init"):           # before training: the averages have not started
            em.launch("norm", "bn_mark", 1, (b(init), i(0)), layer.name, local=1)
        em.launch("norm", "bn_mark", 1, (b(init), i(1)), layer.name, local=1)
    y = em.declare(em.act(layer.name), n)
    em.launch("norm", "bn_fwd", n,
              (b(x), b(stat), b(em.param(layer, "w")), b(em.param(layer, "b")), b(y), i(c), i(s),
               i(n), f(layer.attrs["eps"])), layer.name)


def bn_backward(em: Emitter, layer, t: BackwardTargets):
    c, s, n = _bn_dims(em, layer)
    stat = _stat(em, layer, c)
    sums = em.declare(f"{em.prefix}:bnsum:{layer.name}", 2 * c)
    x, dy, eps = em.source(layer, 0), em.grad(layer.name), layer.attrs["eps"]
    em.launch("norm", "bn_bwd_sums", c,
              (b(x), b(dy), b(stat), b(sums), b(em.pgrad(layer, "w")), b(em.pgrad(layer, "b")),
               i(em.batch), i(c), i(s), f(eps), i(int(t.dparam_accumulate[f"{layer.name}.w"])),
               i(int(t.dparam_accumulate[f"{layer.name}.b"]))), layer.name, local=8)
    if not t.dx[0]:
        return
    em.launch("norm", "bn_bwd_dx", n,
              (b(x), b(dy), b(stat), b(sums), b(em.param(layer, "w")), b(em.source_grad(layer, 0)),
               i(c), i(s), i(n), f(em.batch * s), f(eps), i(int(t.dx_accumulate[0]))),
              layer.name)


attach_lowering("lrn", lrn_forward, lrn_backward)
attach_lowering("softmax", softmax_forward, softmax_backward)
attach_lowering("batchnorm", bn_forward, bn_backward)
