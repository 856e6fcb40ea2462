"""OpenCL lowering of element-wise activations and dropout (kernels in activation.cl)."""
from __future__ import annotations

from ..emit import BackwardTargets, Emitter, b, f, i
from .registry import attach_lowering


def _n(em: Emitter, layer) -> int:
    return em.batch * layer.out.size


# elements one work-item of activation.cl's kernels computes (its float8 form)
PER_ITEM = 8


def _items(em: Emitter, layer) -> int:
    return -(-_n(em, layer) // PER_ITEM)


def _param0(layer) -> float:
    return float(layer.attrs.get("slope", 0.0))


def _make(name: str):
    def forward(em: Emitter, layer):
        if layer.name in em.fused_into:     # its producer's kernel computed it
            return
        y = em.declare(em.act(layer.name), _n(em, layer))
        em.launch("activation", f"{name}_fwd", _items(em, layer),
                  (b(em.source(layer, 0)), b(y), i(_n(em, layer)), f(_param0(layer))), layer.name)

    def backward(em: Emitter, layer, t: BackwardTargets):
        if not t.dx[0]:
            return
        # fused into its producer, its input was never stored: every rule here can take its
        # output in its place (relu without slope: y > 0 exactly where x > 0)
        x = em.act(layer.name) if layer.name in em.fused_into else em.source(layer, 0)
        em.launch("activation", f"{name}_bwd", _items(em, layer),
                  (b(x), b(em.act(layer.name)), b(em.grad(layer.name)),
                   b(em.source_grad(layer, 0)), i(_n(em, layer)), f(_param0(layer)),
                   i(int(t.dx_accumulate[0]))), layer.name)
    return forward, backward


for _name in ("relu", "sigmoid", "tanh", "stanh"):
    attach_lowering(_name, *_make(_name))


def dropout_forward(em: Emitter, layer):
    if em.prefix != "train" or layer.attrs["rate"] == 0:
        em.alias(layer.name, em.source(layer, 0))      # identity outside training
        return
    n = _n(em, layer)
    y = em.declare(em.act(layer.name), n)
    mask = em.declare(f"{em.prefix}:mask:{layer.name}", n)
    em.declare("rng:step", 1, "int32")
    offset, _ = em.rng_offset(n)
    em.launch("activation", "dropout_fwd", n,
              (b(em.source(layer, 0)), b(y), b(mask), i(n), f(layer.attrs["rate"]),
               i(em.seed), i(em.layer_id(layer.name)), b("rng:step"), i(offset)), layer.name)


def dropout_backward(em: Emitter, layer, t: BackwardTargets):
    if not t.dx[0]:
        return
    n = _n(em, layer)
    if em.prefix != "train" or layer.attrs["rate"] == 0:
        em.launch("common", "copy", n, (b(em.grad(layer.name)), b(em.source_grad(layer, 0)),
                                        i(n), i(int(t.dx_accumulate[0]))), layer.name)
        return
    em.launch("activation", "dropout_bwd", n,
              (b(f"{em.prefix}:mask:{layer.name}"), b(em.grad(layer.name)),
               b(em.source_grad(layer, 0)), i(n), i(int(t.dx_accumulate[0]))), layer.name)


attach_lowering("dropout", dropout_forward, dropout_backward)
