"""Losses (SINGA kSoftmaxLoss, kEuclideanLoss) and argmax.  A loss's output is a scalar per
sample; the executor averages it over the batch, and softmax_loss also reports accuracy."""
from __future__ import annotations

from singa_dsl.schema import Attr
from .registry import SPLIT_ELEMENTWISE, ShapeProblem, TensorInfo, define_op, require_float


def _softmax_loss(attrs, ins):
    require_float(ins)
    logits, label = ins
    if label.dtype != "int32":
        raise ShapeProblem("the label of softmax_loss must be integer class ids",
                           "pass the data block's label field, e.g. mnist.label", at=1)
    if label.size != 1:
        raise ShapeProblem(f"softmax_loss takes one label per sample, got shape {list(label.shape)}",
                           at=1)
    if attrs["topk"] > logits.size:
        raise ShapeProblem(f"topk {attrs['topk']} is larger than the {logits.size} classes",
                           at="topk")
    return TensorInfo(())


define_op(
    name="softmax_loss", family="loss",
    doc="Cross-entropy of softmax(logits) against integer labels, averaged over the batch; "
        "reports top-k accuracy.",
    attrs=(Attr("topk", "int", 1, "a prediction is right if the label is among the k best", gt=0),
           Attr("scale", "float", 1.0, "multiplies the gradient", gt=0)),
    sources=("logits", "label"), source_dtypes=("float32", "int32"), infer=_softmax_loss,
    role="loss", partition={"batch": SPLIT_ELEMENTWISE},
    flops=lambda attrs, ins, out: 6 * ins[0].size,
)


def _euclidean(attrs, ins):
    require_float(ins)
    pred, target = ins
    if target.dtype != "float32":
        raise ShapeProblem("the target of euclidean_loss must be real-valued", at=1)
    if pred.size != target.size:
        raise ShapeProblem(f"prediction has {pred.size} values per sample but the target has "
                           f"{target.size}", at=1)
    return TensorInfo(())


define_op(
    name="euclidean_loss", family="loss",
    doc="Σ(x − t)² / batch, SINGA's kEuclideanLoss (its gradient is (x − t)/batch).",
    attrs=(), sources=("x", "target"), source_dtypes=("float32", "float32"),
    infer=_euclidean, role="loss", partition={"batch": SPLIT_ELEMENTWISE},
    flops=lambda attrs, ins, out: 3 * ins[0].size,
)


def _argmax(attrs, ins):
    require_float(ins)
    return TensorInfo((), "int32")


define_op(
    name="argmax", family="loss",
    doc="Index of the largest feature of each sample (for prediction; no gradient).",
    attrs=(), sources=("x",), infer=_argmax, partition={"batch": SPLIT_ELEMENTWISE},
)
