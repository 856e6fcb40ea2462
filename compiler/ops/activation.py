"""Element-wise activations and dropout: the output has the input's shape."""
from __future__ import annotations

import numpy as np

from singa_dsl.schema import Attr
from .registry import SPLIT_ELEMENTWISE, define_op, require_float


def _same(attrs, ins):
    require_float(ins)
    return ins[0]


_EVERYWHERE = {"batch": SPLIT_ELEMENTWISE, "feature": SPLIT_ELEMENTWISE}

# --- numpy float64 references (registry.reference_api) ---------------------------------------
# Element-wise ops: the gradient is dy times the local derivative, which each one writes in
# terms of x or y, whichever is cheaper and more accurate.

STANH_A, STANH_B = 1.7159047, 0.6666667     # SINGA's kSTanh constants


def sigmoid(a):
    """σ(a), computed without overflow warnings for large |a| (exp of a non-positive value only)."""
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _relu_fwd(attrs, xs, params, ctx):
    x = xs[0]
    return np.where(x > 0, x, attrs["slope"] * x)


def _relu_bwd(attrs, xs, params, y, dy, ctx):
    return [dy * np.where(xs[0] > 0, 1.0, attrs["slope"])], {}


def _sigmoid_fwd(attrs, xs, params, ctx):
    return sigmoid(xs[0])


def _sigmoid_bwd(attrs, xs, params, y, dy, ctx):
    return [dy * y * (1.0 - y)], {}


def _tanh_fwd(attrs, xs, params, ctx):
    return np.tanh(xs[0])


def _tanh_bwd(attrs, xs, params, y, dy, ctx):
    return [dy * (1.0 - y * y)], {}


def _stanh_fwd(attrs, xs, params, ctx):
    return STANH_A * np.tanh(STANH_B * xs[0])


def _stanh_bwd(attrs, xs, params, y, dy, ctx):
    t = np.tanh(STANH_B * xs[0])      # from x, not y/A: A and B are rounded constants
    return [dy * STANH_A * STANH_B * (1.0 - t * t)], {}


def _dropout_fwd(attrs, xs, params, ctx):
    """Inverted dropout.  At train time a unit is kept with probability 1 − rate, drawn from
    ``ctx.rng`` (a fresh generator is made and kept on ctx if it has none); the scaled mask
    (0 or 1/(1 − rate)) goes to ``ctx.cache['mask']`` for the backward pass.  At test time
    (``ctx.train`` false) it is the identity and no mask is stored."""
    x = xs[0]
    if not ctx.train:
        ctx.cache.pop("mask", None)
        return x.copy()
    if ctx.rng is None:
        ctx.rng = np.random.default_rng()
    rate = attrs["rate"]
    keep = ctx.rng.random(x.shape) >= rate
    mask = keep / (1.0 - rate)
    ctx.cache["mask"] = mask
    return x * mask


def _dropout_bwd(attrs, xs, params, y, dy, ctx):
    if not ctx.train:
        return [dy.copy()], {}
    if "mask" not in ctx.cache:
        raise KeyError("dropout backward at train time needs the mask its forward stored in "
                       "ctx.cache['mask']: pass the same RefContext to both")
    return [dy * ctx.cache["mask"]], {}


_REFERENCES = {"relu": (_relu_fwd, _relu_bwd), "sigmoid": (_sigmoid_fwd, _sigmoid_bwd),
               "tanh": (_tanh_fwd, _tanh_bwd), "stanh": (_stanh_fwd, _stanh_bwd),
               "dropout": (_dropout_fwd, _dropout_bwd)}

for _name, _doc, _attrs in (
        ("relu", "max(x, 0), or slope·x for x < 0 (leaky).",
         (Attr("slope", "float", 0.0, "slope for negative inputs", ge=0),)),
        ("sigmoid", "1 / (1 + exp(-x)).", ()),
        ("tanh", "tanh(x).", ()),
        ("stanh", "SINGA's scaled tanh: 1.7159047·tanh(0.6666667·x).", ()),
        ("dropout", "Inverted dropout: zero a fraction `rate` at train time and scale the rest "
                    "by 1/(1-rate); the identity at test time.",
         (Attr("rate", "float", 0.5, "fraction of units dropped", ge=0, le=0.99),))):
    define_op(name=_name, family="activation", doc=_doc, attrs=_attrs, sources=("x",),
              infer=_same, partition=_EVERYWHERE,
              flops=lambda attrs, ins, out: 4 * out.size,
              forward=_REFERENCES[_name][0], backward=_REFERENCES[_name][1])
