"""OpenCL lowering of conv (kernels in conv.cl): im2col over the whole batch, one GEMM, a
permute to NCHW that adds the bias.

Buffers: the train phase keeps each layer's col (C·k·k × B·OH·OW) until its backward, which
first takes dW = dY'·colᵀ and then reuses the same buffer for dcol = Wᵀ·dY'; evaluation phases
share one col scratch.  The GEMM result Y' (F × B·OH·OW) lives in a per-phase scratch shared by
every conv layer, reused by the backward for dY'.
"""
from __future__ import annotations

from ..emit import BackwardTargets, Emitter, b, i
from .registry import attach_lowering


def _dims(em: Emitter, layer):
    c, h, w = layer.in_shapes[0].shape
    f, oh, ow = layer.out.shape
    a = layer.attrs
    n = em.batch * oh * ow
    return dict(C=c, H=h, W=w, F=f, OH=oh, OW=ow, K=a["kernel"], S=a["stride"], P=a["pad"],
                N=n, rows=c * a["kernel"] ** 2)


def _col(em: Emitter, layer, d) -> str:
    name = f"train:col:{layer.name}" if em.prefix == "train" else f"{em.prefix}:conv:col"
    return em.declare(name, d["rows"] * d["N"])


def _scratch(em: Emitter, d) -> str:
    return em.declare(f"{em.prefix}:conv:yp", d["F"] * d["N"])


def _shape_args(d):
    return tuple(i(d[k]) for k in ("C", "H", "W", "K", "S", "P", "OH", "OW", "N"))


def forward(em: Emitter, layer):
    d = _dims(em, layer)
    col, yp = _col(em, layer, d), _scratch(em, d)
    total = em.batch * layer.out.size
    y = em.declare(em.act(layer.name), total)
    em.launch("conv", "im2col", (em.batch * d["OH"], d["rows"]),
              (b(em.source(layer, 0)), b(col), *_shape_args(d), i(d["rows"])), layer.name,
              local=(16, 1))
    em.gemm(layer.name, m=d["F"], n=d["N"], k=d["rows"], a=em.param(layer, "w"), b=col, c=yp)
    has_bias = bool(layer.attrs["bias"])
    bias = em.param(layer, "b") if has_bias else em.declare("dummy", 16)
    em.launch("conv", "conv_to_nchw", (d["F"], em.batch),
              (b(yp), b(bias), b(y), i(d["F"]), i(d["OH"] * d["OW"]), i(d["N"]), i(em.batch),
               i(int(has_bias))), layer.name, local=(1, 8))


def backward(em: Emitter, layer, t: BackwardTargets):
    d = _dims(em, layer)
    col, dyp = _col(em, layer, d), _scratch(em, d)
    hw = d["OH"] * d["OW"]
    em.launch("conv", "conv_from_nchw", (d["F"], em.batch),
              (b(em.grad(layer.name)), b(dyp), i(d["F"]), i(hw), i(d["N"]), i(em.batch)),
              layer.name, local=(1, 8))
    if layer.attrs["bias"]:
        acc = t.dparam_accumulate[f"{layer.name}.b"]
        em.launch("conv", "row_sum", d["F"], (b(dyp), b(em.pgrad(layer, "b")), i(d["F"]),
                                              i(d["N"]), i(int(acc))), layer.name, local=8)
    beta = 1.0 if t.dparam_accumulate[f"{layer.name}.w"] else 0.0
    em.gemm(layer.name, m=d["F"], n=d["rows"], k=d["N"], a=dyp, b=col, trans_b=True,
            c=em.pgrad(layer, "w"), beta=beta)
    if not t.dx[0]:
        return
    # col is no longer needed: it receives dcol = Wᵀ·dY'
    em.gemm(layer.name, m=d["rows"], n=d["N"], k=d["F"], a=em.param(layer, "w"), trans_a=True,
            b=dyp, c=col)
    nrows = em.batch * d["C"] * d["H"]          # one work-item per input row
    em.launch("conv", "col2im", nrows,
              (b(col), b(em.source_grad(layer, 0)), *_shape_args(d), i(nrows),
               i(int(t.dx_accumulate[0]))), layer.name, local=8)


attach_lowering("conv", forward, backward)
