"""Losses (SINGA kSoftmaxLoss, kEuclideanLoss) and argmax.  A loss's output is a scalar per
sample; the executor averages it over the batch, and softmax_loss also reports accuracy."""
from __future__ import annotations

import numpy as np

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


# --- numpy float64 references (registry.reference_api) ---------------------------------------
# Forward: the loss of each sample, shape (batch,).  Backward: the gradient of the batch mean
# (dy is ignored: a loss is where back-propagation starts).

def _logits_labels(xs):
    z = xs[0].reshape(len(xs[0]), -1)
    return z, np.asarray(xs[1]).reshape(len(z)).astype(np.int64)


def _log_softmax(z):
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _softmax_loss_fwd(attrs, xs, params, ctx):
    """−log softmax(z)[label] per sample; also sets ctx.cache['accuracy'], the fraction of the
    batch whose label is among the top-k logits.  Ties count against the label, as in Caffe's
    accuracy layer: a sample is right when fewer than k other logits are >= the label's."""
    z, label = _logits_labels(xs)
    rows = np.arange(len(z))
    z_label = z[rows, label]
    rivals = (z >= z_label[:, None]).sum(axis=1) - 1
    ctx.cache["accuracy"] = float(np.mean(rivals < attrs["topk"]))
    return -_log_softmax(z)[rows, label]


def _softmax_loss_bwd(attrs, xs, params, y, dy, ctx):
    z, label = _logits_labels(xs)
    g = np.exp(_log_softmax(z))
    g[np.arange(len(z)), label] -= 1.0
    g *= attrs["scale"] / len(z)                 # SINGA: (p − onehot)·scale / batch
    return [g.reshape(xs[0].shape), None], {}


def _euclidean_fwd(attrs, xs, params, ctx):
    """½·Σ(x − t)² per sample.  SINGA's kEuclideanLoss *reports* Σ(x − t)²/batch but
    back-propagates (x − t)/batch, which is the gradient of ½·Σ(x − t)²/batch; we keep SINGA's
    gradient (so training matches it step for step) and report the loss it is the true gradient
    of, i.e. half the number SINGA displays."""
    b = len(xs[0])
    d = xs[0].reshape(b, -1) - xs[1].reshape(b, -1)
    return 0.5 * (d * d).sum(axis=1)


def _euclidean_bwd(attrs, xs, params, y, dy, ctx):
    # The target gets the true gradient too; an executor whose target is data drops it.
    d = (xs[0].reshape(len(xs[0]), -1) - xs[1].reshape(len(xs[0]), -1)) / len(xs[0])
    return [d.reshape(xs[0].shape), (-d).reshape(xs[1].shape)], {}


def _argmax_fwd(attrs, xs, params, ctx):
    return xs[0].reshape(len(xs[0]), -1).argmax(axis=1).astype(np.int32)


def _argmax_bwd(attrs, xs, params, y, dy, ctx):
    return [None], {}                            # a prediction: nothing flows back


define_op(
    name="softmax_loss", family="loss",
    doc="Cross-entropy of softmax(logits) against integer labels, averaged over the batch; "
        "reports top-k accuracy.",
    attrs=(Attr("topk", "int", 1, "a prediction is right if the label is among the k best", gt=0),
           Attr("scale", "float", 1.0, "multiplies the gradient", gt=0)),
    sources=("logits", "label"), source_dtypes=("float32", "int32"), infer=_softmax_loss,
    role="loss", partition={"batch": SPLIT_ELEMENTWISE}, connection="one_to_all",
    flops=lambda attrs, ins, out: 6 * ins[0].size,
    forward=_softmax_loss_fwd, backward=_softmax_loss_bwd,
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
    doc="½·Σ(x − t)² per sample, averaged over the batch: SINGA's kEuclideanLoss, whose "
        "gradient (x − t)/batch this is the true loss of (SINGA displays twice this value).",
    attrs=(), sources=("x", "target"), source_dtypes=("float32", "float32"),
    infer=_euclidean, role="loss", partition={"batch": SPLIT_ELEMENTWISE},
    connection="one_to_all",
    flops=lambda attrs, ins, out: 3 * ins[0].size,
    forward=_euclidean_fwd, backward=_euclidean_bwd,
)


def _argmax(attrs, ins):
    require_float(ins)
    return TensorInfo((), "int32")


define_op(
    name="argmax", family="loss",
    doc="Index of the largest feature of each sample (for prediction; no gradient).",
    attrs=(), sources=("x",), infer=_argmax, partition={"batch": SPLIT_ELEMENTWISE},
    connection="one_to_all",
    forward=_argmax_fwd, backward=_argmax_bwd,
)
