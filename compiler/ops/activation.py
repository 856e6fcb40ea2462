"""Element-wise activations and dropout: the output has the input's shape."""
from __future__ import annotations

from singa_dsl.schema import Attr
from .registry import SPLIT_ELEMENTWISE, define_op, require_float


def _same(attrs, ins):
    require_float(ins)
    return ins[0]


_EVERYWHERE = {"batch": SPLIT_ELEMENTWISE, "feature": SPLIT_ELEMENTWISE}

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
              flops=lambda attrs, ins, out: 4 * out.size)
