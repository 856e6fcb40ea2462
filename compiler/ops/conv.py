"""conv: SINGA's kCConvolution (Caffe-style im2col), weights (filters, channels·k·k)."""
from __future__ import annotations

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
    flops=lambda attrs, ins, out: 2 * out.size * ins[0].shape[0] * attrs["kernel"] ** 2,
)
