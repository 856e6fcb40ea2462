"""OpenCL lowering of dense: GEMMs with the bias in the forward GEMM's epilogue."""
from __future__ import annotations

from ..emit import BackwardTargets, Emitter
from ..gemm import ACTIVATIONS
from .registry import attach_lowering


def _stored_transposed(em: Emitter, layer) -> bool:
    """True when W is stored (in, units): transpose: true, flipped by a transposed share."""
    _, shared_t = em.owner(layer, "w")
    return bool(layer.attrs["transpose"]) ^ shared_t


def forward(em: Emitter, layer):
    n_in, units = layer.in_shapes[0].size, layer.attrs["units"]
    # an activation reading only this layer is applied as the GEMM stores (its output is
    # written instead of this layer's, which nothing else reads)
    act = em.take_activation(layer, ACTIVATIONS)
    y = em.declare(em.act(act.name if act else layer.name), em.batch * units)
    bias = em.param(layer, "b") if layer.attrs["bias"] else None
    em.gemm(layer.name, m=em.batch, n=units, k=n_in, a=em.source(layer, 0),
            b=em.param(layer, "w"), c=y, trans_b=not _stored_transposed(em, layer), bias=bias,
            act=act.op if act else "")


def backward(em: Emitter, layer, t: BackwardTargets):
    n_in, units = layer.in_shapes[0].size, layer.attrs["units"]
    dy, x, w = em.grad(layer.name), em.source(layer, 0), em.param(layer, "w")
    wt = _stored_transposed(em, layer)
    if t.dx[0]:
        em.gemm(layer.name, m=em.batch, n=n_in, k=units, a=dy, b=w, trans_b=wt,
                c=em.source_grad(layer, 0), beta=1.0 if t.dx_accumulate[0] else 0.0)
    beta = 1.0 if t.dparam_accumulate[f"{layer.name}.w"] else 0.0
    if wt:   # dW (in, units) = xᵀ · dy
        em.gemm(layer.name, m=n_in, n=units, k=em.batch, a=x, trans_a=True, b=dy,
                c=em.pgrad(layer, "w"), beta=beta)
    else:    # dW (units, in) = dyᵀ · x
        em.gemm(layer.name, m=units, n=n_in, k=em.batch, a=dy, trans_a=True, b=x,
                c=em.pgrad(layer, "w"), beta=beta)
    if layer.attrs["bias"]:
        em.col_sum(dy, em.pgrad(layer, "b"), em.batch, units,
                   t.dparam_accumulate[f"{layer.name}.b"], layer.name)


attach_lowering("dense", forward, backward)
