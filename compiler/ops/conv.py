"""conv: SINGA's kCConvolution (Caffe-style im2col), weights (filters, channels·k·k)."""
from __future__ import annotations

import numpy as np

from singa_dsl.schema import Attr
from .registry import (SPLIT_PARAMS, SPLIT_REPLICATE, ParamSlot, ShapeProblem, TensorInfo,
                       define_op, init_attr, require_float)


def conv_out(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def _infer(attrs, ins):
    require_float(ins)
    if len(ins[0].shape) != 3:
        raise ShapeProblem(f"conv needs (channels, height, width) input, got shape "
                           f"{list(ins[0].shape)}",
                           "give the input its image shape, e.g. input(d.image, shape: [1, 8, 8])",
                           at=0)
    c, h, w = ins[0].shape
    k, s, p = attrs["kernel"], attrs["stride"], attrs["pad"]
    if k > h + 2 * p or k > w + 2 * p:
        raise ShapeProblem(f"kernel {k} is larger than the padded input {h + 2 * p}x{w + 2 * p}",
                           "use a smaller kernel or more padding", at="kernel")
    return TensorInfo((attrs["filters"], conv_out(h, k, s, p), conv_out(w, k, s, p)))


def _params(attrs, ins, out):
    c = ins[0].shape[0]
    f, k = attrs["filters"], attrs["kernel"]
    slots = [ParamSlot("w", (f, c * k * k), "weight", c * k * k, f * k * k)]
    if attrs["bias"]:
        slots.append(ParamSlot("b", (f,), "bias", c * k * k, f * k * k,
                               ("constant", (("value", 0.0),))))
    return tuple(slots)


# --- numpy float64 references (registry.reference_api) ---------------------------------------
# Caffe's im2col: column row (c, kh, kw) holds, for every output position, the input pixel
# under kernel tap (kh, kw) of channel c, so the convolution is one matrix product W·cols.

def im2col(x, kernel: int, stride: int, pad: int):
    """(B, C, H, W) → (B, C·k·k, OH·OW), rows in (c, kh, kw) order, zero padding."""
    b, c, h, w = x.shape
    oh, ow = conv_out(h, kernel, stride, pad), conv_out(w, kernel, stride, pad)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = np.empty((b, c, kernel, kernel, oh, ow), dtype=x.dtype)
    for i in range(kernel):
        for j in range(kernel):
            cols[:, :, i, j] = xp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
    return cols.reshape(b, c * kernel * kernel, oh * ow)


def col2im(cols, shape, kernel: int, stride: int, pad: int):
    """The adjoint of im2col: adds every column entry back onto the pixel it was read from."""
    b, c, h, w = shape
    oh, ow = conv_out(h, kernel, stride, pad), conv_out(w, kernel, stride, pad)
    cols = cols.reshape(b, c, kernel, kernel, oh, ow)
    xp = np.zeros((b, c, h + 2 * pad, w + 2 * pad), dtype=cols.dtype)
    for i in range(kernel):
        for j in range(kernel):
            xp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride] += cols[:, :, i, j]
    return xp[:, :, pad:pad + h, pad:pad + w]


def _forward(attrs, xs, params, ctx):
    x = xs[0]
    k, s, p = attrs["kernel"], attrs["stride"], attrs["pad"]
    oh, ow = conv_out(x.shape[2], k, s, p), conv_out(x.shape[3], k, s, p)
    y = np.matmul(params["w"], im2col(x, k, s, p))          # (B, F, OH·OW)
    if attrs["bias"]:
        y = y + params["b"][:, None]
    return y.reshape(len(x), -1, oh, ow)


def _backward(attrs, xs, params, y, dy, ctx):
    x = xs[0]
    k, s, p = attrs["kernel"], attrs["stride"], attrs["pad"]
    w = params["w"]
    dy2 = dy.reshape(len(x), w.shape[0], -1)                # (B, F, OH·OW)
    cols = im2col(x, k, s, p)
    grads = {"w": np.einsum("bfo,bko->fk", dy2, cols)}
    if attrs["bias"]:
        grads["b"] = dy2.sum(axis=(0, 2))
    dx = col2im(np.matmul(w.T, dy2), x.shape, k, s, p)
    return [dx], grads


conv = define_op(
    name="conv", family="conv",
    doc="2-D convolution over (channels, height, width) (SINGA kCConvolution).",
    attrs=(Attr("filters", "int", doc="output channels", positional=True, gt=0),
           Attr("kernel", "int", 3, "square kernel size", gt=0),
           Attr("stride", "int", 1, "step between windows", gt=0),
           Attr("pad", "int", 0, "zero padding on each side", ge=0),
           Attr("bias", "bool", True, "add a bias per filter"),
           init_attr("w"), init_attr("b")),
    sources=("x",), infer=_infer, params=_params,
    partition={"batch": SPLIT_REPLICATE, "feature": SPLIT_PARAMS},
    connection="one_to_all",
    flops=lambda attrs, ins, out: 2 * out.size * ins[0].shape[0] * attrs["kernel"] ** 2,
    forward=_forward, backward=_backward,
)
