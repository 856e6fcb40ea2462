"""OpenCL lowering of rbm (kernels in rbm.cl).

Its forward is the positive phase, h = σ(v·Wᵀ + hbias) (the pre-activation itself for
Gaussian hidden units): what CD starts from, and what an rbm computes as an encoder under
BP.  The Gibbs chain and the CD statistics are emitted by ``compiler/lower_cd.py`` with the
helpers below."""
from __future__ import annotations

from .. import gemm as gemm_mod
from ..emit import BackwardTargets, Emitter, b, f, i
from .registry import attach_lowering


def dims(layer) -> tuple[int, int]:
    """(visible, hidden)."""
    return layer.in_shapes[0].size, layer.attrs["hidden"]


def _packed_wt(em: Emitter, layer, tag: str) -> str:
    """Wᵀ's GEMM panels for this phase, packed by the first v·Wᵀ of the list: CD multiplies
    by Wᵀ twice a step (h⁺ and h⁻) and W does not change in between (updates come after)."""
    nv, nh = dims(layer)
    into = f"{em.prefix}:wpack:{layer.name}"
    if into not in em.buffers:
        em.gemm_pack_b(tag, into, k=nv, n=nh, b=em.param(layer, "w"), trans_b=True, bias=True)
    return into


def hidden_from_visible(em: Emitter, layer, v: str, h: str, tag: str):
    """h = σ(v·Wᵀ + hbias), or the pre-activation for Gaussian hidden units."""
    nv, nh = dims(layer)
    packed = _packed_wt(em, layer, tag) if \
        gemm_mod.should_pack(em.batch, nh, nv, False, False) else None
    em.gemm(tag, m=em.batch, n=nh, k=nv, a=v, b=em.param(layer, "w"), trans_b=True, c=h,
            bias=em.param(layer, "hbias"), b_packed=packed)
    if not layer.attrs["gaussian_hidden"]:
        em.launch("rbm", "rbm_sigmoid", -(-em.batch * nh // 8), (b(h), i(em.batch * nh)), tag)


def visible_from_hidden(em: Emitter, layer, h: str, v: str, tag: str):
    """v = σ(h·W + vbias) (visible units are always binary)."""
    nv, nh = dims(layer)
    em.gemm(tag, m=em.batch, n=nv, k=nh, a=h, b=em.param(layer, "w"), c=v,
            bias=em.param(layer, "vbias"))
    em.launch("rbm", "rbm_sigmoid", -(-em.batch * nv // 8), (b(v), i(em.batch * nv)), tag)


def sample_hidden(em: Emitter, layer, h: str, s: str, gibbs: int, tag: str):
    """s = a sample of h (Bernoulli, or h + N(0, 1)) from the counter-based generator,
    seeded by the job seed, this layer, the training step (buffer rng:step) and ``gibbs``."""
    n = em.batch * dims(layer)[1]
    em.declare("rng:step", 1, "int32")
    offset, total = em.rng_offset(n)
    em.launch("rbm", "rbm_sample", -(-n // 8),
              (b(h), b(s), i(n), i(int(layer.attrs["gaussian_hidden"])), i(em.seed),
               i(em.layer_id(layer.name)), b("rng:step"), i(gibbs), i(total), i(offset)), tag)


def forward(em: Emitter, layer):
    nh = dims(layer)[1]
    y = em.declare(em.act(layer.name), em.batch * nh)
    hidden_from_visible(em, layer, em.source(layer, 0), y, layer.name)


def backward(em: Emitter, layer, t: BackwardTargets):
    """BP through the encoder: da = dy·σ'(·); dW = daᵀ·v, dhbias = Σ da, dv = da·W; vbias
    does not take part (its gradient is zero, as in the numpy reference)."""
    nv, nh = dims(layer)
    n = em.batch * nh
    da = em.declare(f"{em.prefix}:rbm_da:{layer.name}", n)
    em.launch("rbm", "rbm_sigmoid_bwd", n,
              (b(em.act(layer.name)), b(em.grad(layer.name)), b(da), i(n),
               i(int(layer.attrs["gaussian_hidden"]))), layer.name)
    if t.dx[0]:
        em.gemm(layer.name, m=em.batch, n=nv, k=nh, a=da, b=em.param(layer, "w"),
                c=em.source_grad(layer, 0), beta=1.0 if t.dx_accumulate[0] else 0.0)
    em.gemm(layer.name, m=nh, n=nv, k=em.batch, a=da, trans_a=True, b=em.source(layer, 0),
            c=em.pgrad(layer, "w"), beta=1.0 if t.dparam_accumulate[f"{layer.name}.w"] else 0.0)
    em.col_sum(da, em.pgrad(layer, "hbias"), em.batch, nh,
               t.dparam_accumulate[f"{layer.name}.hbias"], layer.name)
    if not t.dparam_accumulate[f"{layer.name}.vbias"]:
        em.fill(em.pgrad(layer, "vbias"), nv, 0.0, layer.name)


attach_lowering("rbm", forward, backward)
