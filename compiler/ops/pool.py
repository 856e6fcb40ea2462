"""max_pool and avg_pool: SINGA's kCPooling, whose output size rounds up like Caffe's."""
from __future__ import annotations

import math

from singa_dsl.schema import Attr
from .registry import SPLIT_ELEMENTWISE, ShapeProblem, TensorInfo, define_op, require_float


def pool_out(size: int, kernel: int, stride: int, pad: int) -> int:
    # Caffe/SINGA CPooling: ceil, then drop a last window that would start in the padding.
    out = int(math.ceil((size + 2 * pad - kernel) / stride)) + 1
    if pad > 0 and (out - 1) * stride >= size + pad:
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

for _name, _doc in (("max_pool", "Max pooling over square windows."),
                    ("avg_pool", "Average pooling over square windows (padding counts as zeros).")):
    define_op(name=_name, family="pool", doc=_doc, attrs=_ATTRS, sources=("x",), infer=_infer,
              partition={"batch": SPLIT_ELEMENTWISE, "feature": SPLIT_ELEMENTWISE},
              flops=lambda attrs, ins, out: out.size * attrs["kernel"] ** 2)
