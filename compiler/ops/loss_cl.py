"""OpenCL lowering of softmax_loss and euclidean_loss (kernels in loss.cl)."""
from __future__ import annotations

from ..emit import BackwardTargets, Emitter, b, f, i
from .registry import attach_lowering


def softmax_loss_forward(em: Emitter, layer):
    classes = layer.in_shapes[0].size
    prob = em.declare(f"{em.prefix}:prob:{layer.name}", em.batch * classes)
    loss = em.declare(f"{em.prefix}:loss:{layer.name}", em.batch)
    hit = em.declare(f"{em.prefix}:hit:{layer.name}", em.batch)
    em.launch("loss", "softmax_loss_fwd", em.batch,
              (b(em.source(layer, 0)), b(em.source(layer, 1)), b(prob), b(loss), b(hit),
               i(em.batch), i(classes), i(layer.attrs["topk"])), layer.name, local=8)
    em.extras[layer.name] = {"loss": loss, "correct": hit}


def softmax_loss_backward(em: Emitter, layer, t: BackwardTargets):
    if not t.dx[0]:
        return
    classes = layer.in_shapes[0].size
    n = em.batch * classes
    em.launch("loss", "softmax_loss_bwd", n,
              (b(f"{em.prefix}:prob:{layer.name}"), b(em.source(layer, 1)),
               b(em.source_grad(layer, 0)), i(em.batch), i(classes),
               f(layer.attrs["scale"]), i(int(t.dx_accumulate[0]))), layer.name)


def euclidean_forward(em: Emitter, layer):
    dim = layer.in_shapes[0].size
    loss = em.declare(f"{em.prefix}:loss:{layer.name}", em.batch)
    em.launch("loss", "euclidean_loss_fwd", em.batch,
              (b(em.source(layer, 0)), b(em.source(layer, 1)), b(loss), i(em.batch), i(dim)),
              layer.name, local=8)
    em.extras[layer.name] = {"loss": loss, "correct": None}


def euclidean_backward(em: Emitter, layer, t: BackwardTargets):
    if not any(t.dx):
        return
    n = em.batch * layer.in_shapes[0].size
    dx = em.source_grad(layer, 0) if t.dx[0] else "dummy"
    dt = em.source_grad(layer, 1) if t.dx[1] else "dummy"
    em.declare("dummy", 16)
    em.launch("loss", "euclidean_loss_bwd", n,
              (b(em.source(layer, 0)), b(em.source(layer, 1)), b(dx), b(dt), i(n), i(em.batch),
               i(int(t.dx[0])), i(int(t.dx_accumulate[0])), i(int(t.dx[1])),
               i(int(t.dx_accumulate[1]))), layer.name)


attach_lowering("softmax_loss", softmax_loss_forward, softmax_loss_backward)
attach_lowering("euclidean_loss", euclidean_forward, euclidean_backward)
