"""rbm: SINGA's kRBMVis + kRBMHid as one op.  Params w (hidden, visible), vbias (visible),
hbias (hidden).  Trained by ``algorithm cd``; under BP it is an encoder h = σ(v·Wᵀ + hbias)."""
from __future__ import annotations

import numpy as np

from singa_dsl.schema import Attr
from .activation import sigmoid
from .registry import (SPLIT_REPLICATE, ParamSlot, TensorInfo, define_op, init_attr,
                       require_float)


def _infer(attrs, ins):
    require_float(ins)
    return TensorInfo((attrs["hidden"],))


def _params(attrs, ins, out):
    v, h = ins[0].size, attrs["hidden"]
    zero = ("constant", (("value", 0.0),))
    return (ParamSlot("w", (h, v), "weight", v, h, ("gaussian", (("mean", 0.0), ("std", 0.01)))),
            ParamSlot("vbias", (v,), "bias", v, h, zero),
            ParamSlot("hbias", (h,), "bias", v, h, zero))


# --- numpy float64 references (registry.reference_api) ---------------------------------------

def _hidden(v, w, hbias, gaussian: bool):
    """RBMHid: p(h | v) = σ(v·Wᵀ + hbias), or the pre-activation itself for Gaussian units."""
    pre = v @ w.T + hbias
    return pre if gaussian else sigmoid(pre)


def _forward(attrs, xs, params, ctx):
    v = xs[0].reshape(len(xs[0]), -1)
    return _hidden(v, params["w"], params["hbias"], attrs["gaussian_hidden"])


def _backward(attrs, xs, params, y, dy, ctx):
    # Under BP the rbm is an encoder; vbias only matters to CD, so its gradient is zero.
    v = xs[0].reshape(len(xs[0]), -1)
    da = dy if attrs["gaussian_hidden"] else dy * y * (1.0 - y)
    grads = {"w": da.T @ v, "vbias": np.zeros_like(params["vbias"]), "hbias": da.sum(axis=0)}
    return [(da @ params["w"]).reshape(xs[0].shape)], grads


def _noise(source, step: int, shape, gaussian: bool):
    """The random numbers of Gibbs step ``step``: drawn from a numpy Generator, or taken from a
    given sequence (one (batch, hidden) array per step) so a test can fix the stream."""
    if hasattr(source, "standard_normal"):
        return source.standard_normal(shape) if gaussian else source.random(shape)
    return np.asarray(source[step], dtype=np.float64).reshape(shape)


def cd_gradients(v, w, vbias, hbias, k: int, gaussian_hidden: bool, uniforms_or_normals):
    """SINGA's kCD (CDWorker with RBMVis/RBMHid) on one batch: returns ({'w', 'vbias', 'hbias'}
    gradients, squared reconstruction error).

    Positive phase h+ = σ(v+·Wᵀ + hbias).  Then k Gibbs steps, each sampling the current hidden
    values (h+ at the first step, h− afterwards), reconstructing v− = σ(sample·W + vbias) and
    recomputing h− = σ(v−·Wᵀ + hbias); v− itself is not sampled (as in Hinton's recipe).
    Sampling is Bernoulli — 1 where uniform < h — or, for Gaussian hidden units (whose h is
    the pre-activation), h + N(0, 1); ``uniforms_or_normals`` supplies those numbers (see
    ``_noise``).  Gradients carry the sign the updater's ``w −= lr·g`` needs to climb the
    likelihood: gW = (h−ᵀ·v− − h+ᵀ·v+)/B, g_vbias = Σ(v− − v+)/B, g_hbias = Σ(h− − h+)/B.
    The error is SINGA's "Squared Error": Σ(v+ − v−)²/B of the first reconstruction."""
    v_pos = np.asarray(v, dtype=np.float64).reshape(len(v), -1)
    b = len(v_pos)
    h_pos = _hidden(v_pos, w, hbias, gaussian_hidden)
    h, v_neg, error = h_pos, v_pos, None
    for step in range(k):
        noise = _noise(uniforms_or_normals, step, h.shape, gaussian_hidden)
        sample = h + noise if gaussian_hidden else (noise < h).astype(np.float64)
        v_neg = sigmoid(sample @ w + vbias)
        if error is None:
            error = float(((v_pos - v_neg) ** 2).sum() / b)
        h = _hidden(v_neg, w, hbias, gaussian_hidden)
    h_neg = h
    grads = {"w": (h_neg.T @ v_neg - h_pos.T @ v_pos) / b,
             "vbias": (v_neg - v_pos).sum(axis=0) / b,
             "hbias": (h_neg - h_pos).sum(axis=0) / b}
    return grads, (0.0 if error is None else error)


define_op(
    name="rbm", family="rbm",
    doc="Restricted Boltzmann machine with binary visible units and binary (or Gaussian) "
        "hidden units; its output is the hidden probabilities.",
    attrs=(Attr("hidden", "int", doc="hidden units", positional=True, gt=0),
           Attr("gaussian_hidden", "bool", False, "Gaussian hidden units (h = pre-activation)"),
           init_attr("w"), init_attr("vbias"), init_attr("hbias"),
           init_attr("b", "sets both vbias and hbias")),
    sources=("v",), infer=_infer, params=_params, param_groups=True,
    partition={"batch": SPLIT_REPLICATE},
    connection="one_to_all",
    flops=lambda attrs, ins, out: 6 * ins[0].size * attrs["hidden"],
    forward=_forward, backward=_backward,
)
