"""Normalisation: lrn (SINGA kLRN, across channels), softmax and batchnorm."""
from __future__ import annotations

import numpy as np

from singa_dsl.schema import Attr
from .registry import (SPLIT_ELEMENTWISE, SPLIT_REPLICATE, ParamSlot, TensorInfo, define_op,
                       init_attr, require_float)


def _same(attrs, ins):
    require_float(ins)
    return ins[0]


# --- numpy float64 references (registry.reference_api) ---------------------------------------
# All three normalise over axis 1 of a batch-first array: channels for (B, C, H, W) input,
# features for flat (B, F) input.

def _channel_window_sum(t, before: int, after: int):
    """s[:, c] = Σ t[:, j] for j in [c − before, c + after], out-of-range channels as zeros
    (a cumulative sum over the zero-padded channel axis)."""
    n = t.shape[1]
    pad = [(0, 0)] * t.ndim
    pad[1] = (before + 1, after)
    csum = np.cumsum(np.pad(t, pad), axis=1)
    hi = np.take(csum, np.arange(n) + before + after + 1, axis=1)
    lo = np.take(csum, np.arange(n), axis=1)
    return hi - lo


def _lrn_window(attrs):
    # Caffe/SINGA: the window of channel c is [c − (size−1)/2, c − (size−1)/2 + size),
    # centred for odd sizes.
    before = (attrs["size"] - 1) // 2
    return before, attrs["size"] - 1 - before


def _lrn_scale(attrs, x):
    before, after = _lrn_window(attrs)
    return attrs["k"] + attrs["alpha"] / attrs["size"] * _channel_window_sum(x * x, before, after)


def _lrn_fwd(attrs, xs, params, ctx):
    x = xs[0]
    return x * _lrn_scale(attrs, x) ** -attrs["beta"]


def _lrn_bwd(attrs, xs, params, y, dy, ctx):
    # y_c = x_c·s_c^−β with s_c = k + α/n·Σ_{j∈win(c)} x_j², so
    # dx_i = dy_i·s_i^−β − 2αβ/n·x_i·Σ_{c: i∈win(c)} dy_c·x_c·s_c^(−β−1);
    # "i ∈ win(c)" is the window with before/after swapped (the same one for odd sizes).
    x = xs[0]
    beta, before, after = attrs["beta"], *_lrn_window(attrs)
    s = _lrn_scale(attrs, x)
    back = _channel_window_sum(dy * x * s ** (-beta - 1.0), after, before)
    return [dy * s ** -beta - 2.0 * attrs["alpha"] * beta / attrs["size"] * x * back], {}


def _softmax_fwd(attrs, xs, params, ctx):
    z = xs[0].reshape(len(xs[0]), -1)
    e = np.exp(z - z.max(axis=1, keepdims=True))     # shifted: no overflow
    return e / e.sum(axis=1, keepdims=True)


def _softmax_bwd(attrs, xs, params, y, dy, ctx):
    dx = y * (dy - (dy * y).sum(axis=1, keepdims=True))
    return [dx.reshape(xs[0].shape)], {}


define_op(
    name="lrn", family="norm",
    doc="Local response normalisation across channels: "
        "y = x·(k + alpha/size·Σ_window x²)^(−beta).",
    attrs=(Attr("size", "int", 5, "channels in the window (odd)", gt=0),
           Attr("alpha", "float", 1.0, "scale", ge=0),
           Attr("beta", "float", 0.75, "exponent", ge=0),
           Attr("k", "float", 1.0, "additive constant", gt=0)),
    sources=("x",), infer=_same,
    partition={"batch": SPLIT_ELEMENTWISE}, connection="one_to_all",
    flops=lambda attrs, ins, out: out.size * (attrs["size"] + 6),
    forward=_lrn_fwd, backward=_lrn_bwd,
)

define_op(
    name="softmax", family="norm",
    doc="Softmax over the features of each sample (the input is flattened).",
    attrs=(), sources=("x",), infer=lambda attrs, ins: TensorInfo((ins[0].size,)) if
    ins[0].dtype == "float32" else _same(attrs, ins),
    partition={"batch": SPLIT_ELEMENTWISE}, connection="one_to_all",
    flops=lambda attrs, ins, out: 5 * out.size,
    forward=_softmax_fwd, backward=_softmax_bwd,
)


def _bn_params(attrs, ins, out):
    c = ins[0].shape[0]
    return (ParamSlot("w", (c,), "weight", c, c, ("constant", (("value", 1.0),))),
            ParamSlot("b", (c,), "bias", c, c, ("constant", (("value", 0.0),))))


def _bn_axes(x):
    return (0,) + tuple(range(2, x.ndim))            # everything but the channel axis


def _bn_bcast(v, x):
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))  # (C,) → broadcastable against x


def _bn_stats(attrs, x, ctx):
    """The (mean, var, from_batch) normalising x.  Training uses the batch statistics (biased
    variance, as the normalisation itself does in Caffe/cuDNN).  Testing uses the running
    averages in ctx.cache['running_mean'/'running_var'] when the cache has them, and falls back
    to the batch statistics when it has not (a net tested before any training step)."""
    if not ctx.train and "running_mean" in ctx.cache:
        return ctx.cache["running_mean"], ctx.cache["running_var"], False
    axes = _bn_axes(x)
    return x.mean(axis=axes), x.var(axis=axes), True


def _bn_fwd(attrs, xs, params, ctx):
    """Training also updates the running averages in ctx.cache: they start at mean 0 and
    variance 1 and move as running = momentum·running + (1 − momentum)·batch, with the biased
    batch variance."""
    x = xs[0]
    mean, var, _ = _bn_stats(attrs, x, ctx)
    if ctx.train:
        m = attrs["momentum"]
        c = x.shape[1]
        ctx.cache["running_mean"] = m * ctx.cache.get("running_mean", np.zeros(c)) + (1 - m) * mean
        ctx.cache["running_var"] = m * ctx.cache.get("running_var", np.ones(c)) + (1 - m) * var
    xhat = (x - _bn_bcast(mean, x)) / np.sqrt(_bn_bcast(var, x) + attrs["eps"])
    return _bn_bcast(params["w"], x) * xhat + _bn_bcast(params["b"], x)


def _bn_bwd(attrs, xs, params, y, dy, ctx):
    x = xs[0]
    axes = _bn_axes(x)
    mean, var, from_batch = _bn_stats(attrs, x, ctx)
    inv_std = _bn_bcast(1.0 / np.sqrt(var + attrs["eps"]), x)
    xhat = (x - _bn_bcast(mean, x)) * inv_std
    grads = {"w": (dy * xhat).sum(axis=axes), "b": dy.sum(axis=axes)}
    dxhat = dy * _bn_bcast(params["w"], x)
    if not from_batch:                       # fixed statistics: an affine map of x
        return [dxhat * inv_std], grads
    # With batch statistics the mean and variance depend on x too (n values per channel).
    n = x.size // x.shape[1]
    dx = inv_std / n * (n * dxhat - dxhat.sum(axis=axes, keepdims=True)
                        - xhat * (dxhat * xhat).sum(axis=axes, keepdims=True))
    return [dx], grads


define_op(
    name="batchnorm", family="norm",
    doc="Batch normalisation per channel (per feature for flat input): "
        "y = w·(x − mean)/sqrt(var + eps) + b, with running averages for testing.",
    attrs=(Attr("momentum", "float", 0.9, "weight of the old running average", ge=0, le=1),
           Attr("eps", "float", 1e-5, "added to the variance", gt=0),
           init_attr("w", "scale (gamma), default constant(1)"),
           init_attr("b", "shift (beta), default constant(0)")),
    sources=("x",), infer=_same, params=_bn_params,
    # Statistics span the whole batch: a batch split would change the result.
    partition={"feature": SPLIT_ELEMENTWISE},
    flops=lambda attrs, ins, out: 8 * out.size,
    forward=_bn_fwd, backward=_bn_bwd,
)
