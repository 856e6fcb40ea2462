"""OpenCL lowering of max_pool and avg_pool (kernels in pool.cl), output sizes from
pool.py's pool_out (Caffe's ceil rule).  max_pool stores the argmax of each window (an int32
buffer per layer and phase) for its backward.  Forward kernels take one work-item per
output, backward ones one per input row."""
from __future__ import annotations

from ..emit import BackwardTargets, Emitter, b, i
from .registry import attach_lowering


def _shape_args(layer):
    _, h, w = layer.in_shapes[0].shape
    _, oh, ow = layer.out.shape
    a = layer.attrs
    return (i(h), i(w), i(a["kernel"]), i(a["stride"]), i(a["pad"]), i(oh), i(ow))


def _input_rows(em: Emitter, layer) -> int:
    """The backward kernels' work-items: one per input row (sample, channel, h)."""
    c, h, _ = layer.in_shapes[0].shape
    return em.batch * c * h


def _argmax_buffer(em: Emitter, layer) -> str:
    return em.declare(f"{em.prefix}:argmax:{layer.name}", em.batch * layer.out.size, "int32")


def max_forward(em: Emitter, layer):
    total = em.batch * layer.out.size
    y = em.declare(em.act(layer.name), total)
    em.launch("pool", "max_pool_fwd", total,
              (b(em.source(layer, 0)), b(y), b(_argmax_buffer(em, layer)), *_shape_args(layer),
               i(total)), layer.name)


def max_backward(em: Emitter, layer, t: BackwardTargets):
    if not t.dx[0]:
        return
    nrows = _input_rows(em, layer)
    em.launch("pool", "max_pool_bwd", nrows,
              (b(_argmax_buffer(em, layer)), b(em.grad(layer.name)), b(em.source_grad(layer, 0)),
               *_shape_args(layer), i(nrows), i(int(t.dx_accumulate[0]))), layer.name, local=8)


def avg_forward(em: Emitter, layer):
    total = em.batch * layer.out.size
    y = em.declare(em.act(layer.name), total)
    em.launch("pool", "avg_pool_fwd", total,
              (b(em.source(layer, 0)), b(y), *_shape_args(layer), i(total)), layer.name)


def avg_backward(em: Emitter, layer, t: BackwardTargets):
    if not t.dx[0]:
        return
    nrows = _input_rows(em, layer)
    em.launch("pool", "avg_pool_bwd", nrows,
              (b(em.grad(layer.name)), b(em.source_grad(layer, 0)), *_shape_args(layer),
               i(nrows), i(int(t.dx_accumulate[0]))), layer.name, local=8)


attach_lowering("max_pool", max_forward, max_backward)
attach_lowering("avg_pool", avg_forward, avg_backward)
