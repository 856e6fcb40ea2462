"""Every op's OpenCL lowering against its numpy float64 reference, forward and backward.

Each case is one layer of a tiny program (kernel_harness.LayerCase), at sizes that fit no
tile or work-group evenly; backward runs both as the first writer of its gradient buffers
(pre-filled with NaN, which an overwriting kernel must never read) and as a later one that
accumulates (pre-filled with random values).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from kernel_harness import LayerCase, check, close, program
from singa_dsl.compiler.ops import OPS
from singa_dsl.compiler.ops.norm_cl import running_buffers
from singa_dsl.compiler.ops.registry import RefContext, TensorInfo
from singa_dsl.runtime.device import Device
from singa_dsl.runtime.executor import Executor

ACCUMULATE = [pytest.param(False, id="overwrite"), pytest.param(True, id="accumulate")]


@pytest.fixture(scope="module")
def device():
    return Device.open()


def run_case(device, net, shape, batch, name, *, acc=False, seed=0, classes=3, inputs=None,
             backward=True, **tol):
    case = LayerCase(program(net, shape, batch, classes), name, inputs=inputs, seed=seed)
    out = case.run(device, dx_acc=acc, param_acc=acc, backward=backward)
    check(out, name, **tol)
    return out


def test_every_op_with_a_reference_has_a_lowering():
    missing = [name for name, op in OPS.items()
               if op.emit_forward is None and name not in ("rbm", "gru", "lstm", "rnn")]
    assert not missing, f"ops without OpenCL kernels: {missing}"


# ---- conv -------------------------------------------------------------------------------------

@pytest.mark.parametrize("acc", ACCUMULATE)
def test_conv_stride_and_pad(device, acc):
    net = "x = input(d.image)\nc = conv(x, 5, kernel: 3, stride: 2, pad: 1)"
    run_case(device, net, [3, 7, 7], 3, "c", acc=acc)


def test_conv_no_bias_rectangular_stride_one(device):
    net = "x = input(d.image)\nc = conv(x, 4, kernel: 2, stride: 1, pad: 0, bias: false)"
    run_case(device, net, [2, 5, 6], 2, "c")


def test_conv_many_rows_packs_gemm(device):
    # C·k·k = 144 rows: the dcol GEMM (m = 144) takes the packed path
    net = "x = input(d.image)\nc = conv(x, 7, kernel: 3, stride: 1, pad: 1)"
    run_case(device, net, [16, 5, 5], 2, "c", acc=True)


def test_conv_kernel_larger_than_stride_with_overlap(device):
    net = "x = input(d.image)\nc = conv(x, 3, kernel: 5, stride: 3, pad: 2)"
    run_case(device, net, [2, 9, 8], 2, "c")


# ---- pooling ----------------------------------------------------------------------------------

POOLS = [
    # (shape, kernel, stride, pad): ceil-rounded last windows, clipped to input and padding
    ([3, 8, 8], 3, 2, 0),
    ([2, 6, 9], 3, 2, 1),
    ([2, 7, 7], 2, 2, 0),
    ([1, 5, 5], 3, 1, 1),
]


@pytest.mark.parametrize("op", ["max_pool", "avg_pool"])
@pytest.mark.parametrize("shape,k,s,p", POOLS)
def test_pool(device, op, shape, k, s, p):
    net = f"x = input(d.image)\np = {op}(x, kernel: {k}, stride: {s}, pad: {p})"
    run_case(device, net, shape, 3, "p")


@pytest.mark.parametrize("op", ["max_pool", "avg_pool"])
def test_pool_accumulates(device, op):
    net = f"x = input(d.image)\np = {op}(x, kernel: 3, stride: 2, pad: 1)"
    run_case(device, net, [2, 7, 7], 2, "p", acc=True)


def test_max_pool_ties_take_the_first_maximum(device):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 2, size=(2, 2, 7, 7)).astype(np.float32)     # many equal maxima
    net = "x = input(d.image)\np = max_pool(x, kernel: 3, stride: 2, pad: 1)"
    run_case(device, net, [2, 7, 7], 2, "p", inputs={0: x})


# ---- normalisation ----------------------------------------------------------------------------

@pytest.mark.parametrize("acc", ACCUMULATE)
@pytest.mark.parametrize("size", [3, 4])
def test_lrn(device, size, acc):
    net = f"x = input(d.image)\nn = lrn(x, size: {size}, alpha: 0.5, beta: 0.75, k: 2)"
    run_case(device, net, [5, 3, 4], 3, "n", acc=acc)


def test_lrn_cifar_constants(device):
    net = "x = input(d.image)\nn = lrn(x, size: 3, alpha: 5e-05, beta: 0.75)"
    run_case(device, net, [5, 2, 3], 2, "n")


@pytest.mark.parametrize("acc", ACCUMULATE)
def test_softmax(device, acc):
    net = "x = input(d.image)\ns = softmax(x)"
    run_case(device, net, [3, 2, 3], 5, "s", acc=acc)


@pytest.mark.parametrize("acc", ACCUMULATE)
@pytest.mark.parametrize("shape", [[3, 4, 5], [7]], ids=["channels", "flat"])
def test_batchnorm_train(device, shape, acc):
    net = "x = input(d.image)\nb = batchnorm(x)"
    run_case(device, net, shape, 6, "b", acc=acc, seed=1)


def test_batchnorm_running_averages_and_evaluation(device):
    """Evaluation before any training step normalises by the batch; training steps move the
    running averages from (0, 1) by momentum; evaluation then uses them."""
    prog = program("x = input(d.image)\nb = batchnorm(x, momentum: 0.8)", [3, 2, 5], 4)
    case = LayerCase(prog, "b", seed=2)
    layer, op = case.layer, OPS["batchnorm"]
    ems = {phase: case.emitter(phase) for phase in ("train", "test")}
    for em in ems.values():
        op.emit_forward(em, layer)
    buffers = {**ems["train"].buffers, **ems["test"].buffers}
    programs = {**ems["train"].programs, **ems["test"].programs}
    lists = {p: em.launches for p, em in ems.items()}
    lists["init"] = ems["train"].side_lists["init"]
    ex = Executor(device, buffers.values(), programs.values(), lists)
    mean_buf, var_buf, init_buf = running_buffers("b")
    ex.write(init_buf, np.ones(1, np.int32))       # garbage, as a fresh device buffer may hold
    ex.run("init")                                 # the trainer runs it before training
    for key, v in case.owner_values.items():
        ex.write(f"param:{key}", v)
    cache = {}

    def evaluate(x):
        ex.write(ems["test"].source(layer, 0), x)
        ex.run("test")
        got = ex.read(ems["test"].act("b"), x.shape)
        case.inputs = [x]
        want, _, _ = case.reference(None, train=False, cache=dict(cache))
        close(got, want, what="batchnorm evaluation")

    rng = np.random.default_rng(5)
    evaluate(rng.standard_normal((4, 3, 2, 5)).astype(np.float32) * 3 + 1)
    for _ in range(2):
        x = (rng.standard_normal((4, 3, 2, 5)) * 2 - 1).astype(np.float32)
        ex.write(ems["train"].source(layer, 0), x)
        ex.run("train")
        case.inputs = [x]
        want, _, _ = case.reference(None, train=True, cache=cache)
        close(ex.read(ems["train"].act("b"), x.shape), want, what="batchnorm train")
        close(ex.read(mean_buf), cache["running_mean"], what="running mean")
        close(ex.read(var_buf), cache["running_var"], what="running var")
    evaluate(rng.standard_normal((4, 3, 2, 5)).astype(np.float32))


# ---- connection ops ---------------------------------------------------------------------------

CONCAT_NET = """x = input(d.image)
a = relu(x)
s = slice(x, 1, 2, dim: {dim})
c = concat(a, s, dim: {dim})"""


@pytest.mark.parametrize("acc", ACCUMULATE)
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_concat(device, dim, acc):
    run_case(device, CONCAT_NET.format(dim=dim), [2, 3, 4], 3, "c", acc=acc)


@pytest.mark.parametrize("acc", ACCUMULATE)
@pytest.mark.parametrize("dim,begin,end", [(1, 1, 2), (2, 0, 2), (3, 1, 3)])
def test_slice(device, dim, begin, end, acc):
    net = f"x = input(d.image)\ns = slice(x, {begin}, {end}, dim: {dim})"
    run_case(device, net, [2, 3, 4], 3, "s", acc=acc)


def _int_layer(case, in_shape, out_shape):
    """The case's layer re-typed to integer tensors (no synthetic field has such a shape)."""
    case.layer = dataclasses.replace(case.layer, in_shapes=(TensorInfo(in_shape, "int32"),),
                                     out=TensorInfo(out_shape, case.layer.out.dtype))


def test_slice_of_integers(device):
    case = LayerCase(program("x = input(d.image)\ns = slice(x, 1, 3)", [4], 3), "s")
    _int_layer(case, (4,), (2,))
    case.layer = dataclasses.replace(case.layer, out=TensorInfo((2,), "int32"))
    case.inputs = [np.arange(12, dtype=np.int32).reshape(3, 4)]
    check(case.run(device, backward=False), "int slice")


@pytest.mark.parametrize("acc", ACCUMULATE)
def test_embedding(device, acc):
    # batch 9 over 3 labels: every id repeats, so the backward must add the rows up
    run_case(device, "e = embedding(d.label, 5, 6)", [2], 9, "e", acc=acc)


def test_embedding_several_ids_per_sample(device):
    case = LayerCase(program("e = embedding(d.label, 7, 17)", [2], 4), "e", seed=4)
    _int_layer(case, (3,), (3, 17))
    case.inputs = [np.random.default_rng(0).integers(0, 7, (4, 3)).astype(np.int32)]
    check(case.run(device, param_acc=True), "embedding")


def test_onehot_and_argmax(device):
    run_case(device, "o = onehot(d.label, 4)", [2], 5, "o", backward=False)
    run_case(device, "x = input(d.image)\na = argmax(x)", [11], 7, "a", backward=False)


# ---- the ops that already had lowerings -------------------------------------------------------

@pytest.mark.parametrize("acc", ACCUMULATE)
@pytest.mark.parametrize("attrs", ["", ", transpose: true", ", bias: false"])
def test_dense(device, attrs, acc):
    run_case(device, f"x = input(d.image)\nf = dense(x, 13{attrs})", [3, 2, 3], 5, "f", acc=acc)


@pytest.mark.parametrize("acc", ACCUMULATE)
def test_dense_transposed_share(device, acc):
    net = """x = input(d.image)
e = dense(x, 5)
f = dense(e, 18, w: share(e.w, transpose: true))"""
    run_case(device, net, [18], 6, "f", acc=acc)


@pytest.mark.parametrize("acc", ACCUMULATE)
@pytest.mark.parametrize("op", ["relu", "relu(slope: 0.1)", "sigmoid", "tanh", "stanh"])
def test_activation(device, op, acc):
    name, _, rest = op.partition("(")
    args = f", {rest[:-1]}" if rest else ""
    run_case(device, f"x = input(d.image)\na = {name}(x{args})", [2, 3, 5], 3, "a", acc=acc)


@pytest.mark.parametrize("acc", ACCUMULATE)
def test_softmax_loss(device, acc):
    net = "x = input(d.image)\nl = softmax_loss(x, d.label, scale: 0.5)"
    run_case(device, net, [7], 9, "l", acc=acc, classes=7)


def test_softmax_loss_topk_accuracy(device):
    case = LayerCase(program("x = input(d.image)\nl = softmax_loss(x, d.label, topk: 2)",
                             [5], 8, 5), "l")
    em_out = case.run(device, backward=False, read=("train:hit:l",))
    x, label = case.inputs
    rank = (x > x[np.arange(8), label][:, None]).sum(axis=1)
    np.testing.assert_array_equal(em_out.buffers["train:hit:l"][:8], (rank < 2).astype(float))


@pytest.mark.parametrize("acc", ACCUMULATE)
def test_euclidean_loss(device, acc):
    net = "x = input(d.image)\nt = tanh(x)\nl = euclidean_loss(x, t)"
    run_case(device, net, [2, 5], 3, "l", acc=acc)


# ---- recurrent cells in a plain bp net: one step from a zero state ---------------------------

@pytest.mark.parametrize("acc", ACCUMULATE)
@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn", 'rnn(act: "relu")'])
def test_recurrent_cell_one_step(device, cell, acc):
    """The sequence lowering with T = 1 (20 units: the gru kernels' float8 path and a tail);
    BPTT over many steps is checked in tests/algorithms/test_bptt.py."""
    name, _, rest = cell.partition("(")
    args = f", {rest[:-1]}" if rest else ""
    run_case(device, f"x = input(d.image)\nh = {name}(x, 20{args})", [7], 3, "h", acc=acc)
