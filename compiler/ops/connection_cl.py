"""OpenCL lowering of connection ops that move no data: input (a view of its data buffer)
and split (a view of its source; its consumers' gradients are summed by accumulation)."""
from __future__ import annotations

from ..emit import BackwardTargets, Emitter, b, i
from .registry import attach_lowering


def view_forward(em: Emitter, layer):
    em.alias(layer.name, em.source(layer, 0))


def input_backward(em: Emitter, layer, t: BackwardTargets):
    return   # data needs no gradient


def split_backward(em: Emitter, layer, t: BackwardTargets):
    if t.dx[0]:
        n = em.batch * layer.out.size
        em.launch("common", "copy", n, (b(em.grad(layer.name)), b(em.source_grad(layer, 0)),
                                        i(n), i(int(t.dx_accumulate[0]))), layer.name)


attach_lowering("input", view_forward, input_backward)
attach_lowering("split", view_forward, split_backward)
