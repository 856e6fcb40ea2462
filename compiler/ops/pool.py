"""max_pool and avg_pool: SINGA's kCPooling, whose output size rounds up like Caffe's."""
from __future__ import annotations

import math

import numpy as np

from singa_dsl.schema import Attr
from .registry import SPLIT_ELEMENTWISE, ShapeProblem, TensorInfo, define_op, require_float


def pool_out(size: int, kernel: int, stride: int, pad: int) -> int:
    # Caffe/SINGA CPooling: ceil, then drop a last window that would start in the padding.
    # Caffe only checks when pad > 0; with pad 0 and stride > kernel the ceil can also add a
    # window that starts past the input (size 5, kernel 1, stride 3 → 3 windows, the last at
    # 6), which Caffe fills with garbage (-FLT_MAX, or a negative divisor), so check always.
    out = int(math.ceil((size + 2 * pad - kernel) / stride)) + 1
    if (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _infer(attrs, ins):
    require_float(ins)
    if len(ins[0].shape) != 3:
        raise ShapeProblem(f"pooling needs (channels, height, width) input, got shape "
                           f"{list(ins[0].shape)}", at=0)
    c, h, w = ins[0].shape
    k, s, p = attrs["kernel"], attrs["stride"], attrs["pad"]
    if k > h + 2 * p or k > w + 2 * p:
        raise ShapeProblem(f"kernel {k} is larger than the padded input {h + 2 * p}x{w + 2 * p}",
                           at="kernel")
    if p >= k:
        raise ShapeProblem(f"pad {p} must be smaller than kernel {k}", at="pad")
    return TensorInfo((c, pool_out(h, k, s, p), pool_out(w, k, s, p)))


_ATTRS = (Attr("kernel", "int", 3, "square window size", gt=0),
          Attr("stride", "int", 2, "step between windows", gt=0),
          Attr("pad", "int", 0, "padding on each side", ge=0))


# --- numpy float64 references (registry.reference_api) ---------------------------------------
# Written as Caffe's pooling loops over output positions (vectorised over batch and channel),
# because the window clipping rules are the point: max windows are clipped to the real input
# (padding never wins), average windows divide by the window area clipped to the *padded*
# input, so padding counts as zeros but the overhang of a ceil-rounded last window does not.

def _windows(h: int, w: int, attrs, clip_to_padded: bool):
    """Yields (ph, pw, hs, he, ws, we, area): the window of output (ph, pw) within the real
    input, and the divisor Caffe's average pooling uses for it."""
    k, s, p = attrs["kernel"], attrs["stride"], attrs["pad"]
    for ph in range(pool_out(h, k, s, p)):
        for pw in range(pool_out(w, k, s, p)):
            hs, ws = ph * s - p, pw * s - p
            lim_h, lim_w = (h + p, w + p) if clip_to_padded else (h, w)
            he, we = min(hs + k, lim_h), min(ws + k, lim_w)
            area = (he - hs) * (we - ws)
            hs, ws = max(hs, 0), max(ws, 0)
            yield ph, pw, hs, min(he, h), ws, min(we, w), area


def _out_shape(x, attrs):
    k, s, p = attrs["kernel"], attrs["stride"], attrs["pad"]
    b, c, h, w = x.shape
    return b, c, pool_out(h, k, s, p), pool_out(w, k, s, p)


def _max_fwd(attrs, xs, params, ctx):
    x = xs[0]
    y = np.empty(_out_shape(x, attrs))
    for ph, pw, hs, he, ws, we, _ in _windows(x.shape[2], x.shape[3], attrs, False):
        y[:, :, ph, pw] = x[:, :, hs:he, ws:we].max(axis=(2, 3))
    return y


def _max_bwd(attrs, xs, params, y, dy, ctx):
    x = xs[0]
    b, c = x.shape[:2]
    dx = np.zeros_like(x)
    bi, ci = np.meshgrid(np.arange(b), np.arange(c), indexing="ij")
    for ph, pw, hs, he, ws, we, _ in _windows(x.shape[2], x.shape[3], attrs, False):
        # argmax of the row-major window = the first maximum, as Caffe's strict '>' scan keeps
        idx = x[:, :, hs:he, ws:we].reshape(b, c, -1).argmax(axis=2)
        rows, cols = hs + idx // (we - ws), ws + idx % (we - ws)
        np.add.at(dx, (bi, ci, rows, cols), dy[:, :, ph, pw])
    return [dx], {}


def _avg_fwd(attrs, xs, params, ctx):
    x = xs[0]
    y = np.empty(_out_shape(x, attrs))
    for ph, pw, hs, he, ws, we, area in _windows(x.shape[2], x.shape[3], attrs, True):
        y[:, :, ph, pw] = x[:, :, hs:he, ws:we].sum(axis=(2, 3)) / area
    return y


def _avg_bwd(attrs, xs, params, y, dy, ctx):
    x = xs[0]
    dx = np.zeros_like(x)
    for ph, pw, hs, he, ws, we, area in _windows(x.shape[2], x.shape[3], attrs, True):
        dx[:, :, hs:he, ws:we] += (dy[:, :, ph, pw] / area)[:, :, None, None]
    return [dx], {}


for _name, _doc, _fwd, _bwd in (
        ("max_pool", "Max pooling over square windows.", _max_fwd, _max_bwd),
        ("avg_pool", "Average pooling over square windows (padding counts as zeros).",
         _avg_fwd, _avg_bwd)):
    define_op(name=_name, family="pool", doc=_doc, attrs=_ATTRS, sources=("x",), infer=_infer,
              partition={"batch": SPLIT_ELEMENTWISE, "feature": SPLIT_ELEMENTWISE},
              flops=lambda attrs, ins, out: out.size * attrs["kernel"] ** 2,
              forward=_fwd, backward=_bwd)
