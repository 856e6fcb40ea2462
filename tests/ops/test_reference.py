"""The numpy float64 references of every op (registry.reference_api).

* every op has a forward, and a backward unless it has nothing to differentiate;
* every backward agrees with central finite differences of a random projection sum(y·R),
  for every float input, every param and the recurrent state (h_prev, c_prev);
* forwards agree with independent, deliberately plain formulations written here (direct
  loops for conv, pooling and lrn, log-sum-exp for softmax_loss, SINGA's GRU equations...);
* output shapes agree with each op's shape rule (``infer``), and param shapes with ``params``;
* ``rbm.cd_gradients`` agrees with a plain transcription of SINGA's kCD.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np
import pytest

from singa_dsl.compiler.ops import OPS
from singa_dsl.compiler.ops.pool import pool_out
from singa_dsl.compiler.ops.rbm import cd_gradients
from singa_dsl.compiler.ops.registry import RefContext, TensorInfo
from singa_dsl.schema import defaults

EPS = 1e-6                     # central-difference step
RTOL, ATOL = 1e-5, 1e-7
NO_GRADIENT = {"argmax", "onehot"}      # outputs integers / depends only on integer ids


# --------------------------------------------------------------------------------------------
# Cases: an op, its inputs (batch first) and attrs; params are drawn to the shapes its
# ``params`` rule gives, so the shape rules are exercised along with the references.

@dataclass
class Case:
    op: str
    inputs: list
    attrs: dict = field(default_factory=dict)
    train: bool = True
    seed: int | None = None          # ctx.rng = default_rng(seed), fresh for every forward
    state: dict = field(default_factory=dict)        # ctx.cache before forward, e.g. h_prev
    state_grads: dict = field(default_factory=dict)  # state key → cache key of its gradient
    extra_out: dict = field(default_factory=dict)    # cache output key → cache key of its dy
    name: str = ""

    @property
    def opdef(self):
        return OPS[self.op]

    def full_attrs(self):
        return {**defaults(self.opdef.attrs), **self.attrs}

    def infos(self):
        return tuple(TensorInfo(x.shape[1:], "int32" if is_int(x) else "float32")
                     for x in self.inputs)

    def out_info(self):
        return self.opdef.infer(self.full_attrs(), self.infos())

    def params(self):
        rng = np.random.default_rng(zlib.crc32(self.name.encode()))
        slots = self.opdef.params(self.full_attrs(), self.infos(), self.out_info())
        return {s.name: rng.normal(0.0, 0.6, s.shape) for s in slots}

    def ctx(self, state=None):
        state = self.state if state is None else state
        rng = None if self.seed is None else np.random.default_rng(self.seed)
        return RefContext(train=self.train, rng=rng,
                          cache={k: np.array(v) for k, v in state.items()})


def is_int(x) -> bool:
    return np.asarray(x).dtype.kind in "iu"


def normal(rng, *shape, away_from_zero=False):
    x = rng.normal(size=shape)
    if away_from_zero:                           # for kinks at 0 (relu)
        x = np.sign(x) * (0.1 + np.abs(x))
    return x


def distinct(rng, *shape):
    """Values at least 0.05 apart, so a finite-difference step never changes a max."""
    n = math.prod(shape)
    return (rng.permutation(n) * 0.1 + rng.uniform(0, 0.05, n) - 0.05 * n).reshape(shape)


def ids(rng, *shape, vocab):
    return rng.integers(0, vocab, size=shape).astype(np.int32)


def make_cases() -> list[Case]:
    r = np.random.default_rng(1234)
    c = []
    add = lambda op, inputs, name, **kw: c.append(Case(op, inputs, name=f"{op}-{name}", **kw))

    add("dense", [normal(r, 2, 3)], "3to5", attrs={"units": 5})
    add("dense", [normal(r, 2, 3)], "transpose", attrs={"units": 5, "transpose": True})
    add("dense", [normal(r, 3, 2, 3)], "flatten-nobias", attrs={"units": 4, "bias": False})

    add("conv", [normal(r, 2, 2, 5, 5)], "k3s2p1", attrs={"filters": 3, "kernel": 3,
                                                          "stride": 2, "pad": 1})
    add("conv", [normal(r, 2, 1, 6, 5)], "k2s1-nobias-nonsquare",
        attrs={"filters": 2, "kernel": 2, "stride": 1, "bias": False})
    add("conv", [normal(r, 1, 3, 4, 4)], "k3s3p2", attrs={"filters": 2, "kernel": 3,
                                                          "stride": 3, "pad": 2})

    for op in ("max_pool", "avg_pool"):
        for shape, k, s, p in POOL_GEOMETRIES:
            add(op, [distinct(r, 2, 2, *shape)], f"{shape[0]}x{shape[1]}-k{k}s{s}p{p}",
                attrs={"kernel": k, "stride": s, "pad": p})

    add("relu", [normal(r, 2, 7, away_from_zero=True)], "plain")
    add("relu", [normal(r, 2, 3, 2, away_from_zero=True)], "leaky", attrs={"slope": 0.1})
    add("sigmoid", [normal(r, 2, 5)], "plain")
    add("tanh", [normal(r, 2, 5)], "plain")
    add("stanh", [normal(r, 2, 5)], "plain")
    add("dropout", [normal(r, 3, 6)], "train", attrs={"rate": 0.3}, seed=5)
    add("dropout", [normal(r, 3, 6)], "test", attrs={"rate": 0.3}, train=False)

    add("lrn", [normal(r, 2, 4, 3, 3)], "size3", attrs={"size": 3, "alpha": 0.7, "k": 1.5})
    add("lrn", [normal(r, 2, 4, 2, 2)], "size5-defaults")
    add("lrn", [normal(r, 2, 5, 2, 1)], "size2-even", attrs={"size": 2, "beta": 0.6})
    add("lrn", [normal(r, 2, 6)], "flat", attrs={"size": 3})

    add("softmax", [normal(r, 2, 5)], "flat")
    add("softmax", [normal(r, 2, 2, 3)], "flattens")

    add("batchnorm", [normal(r, 4, 3) * 2 + 1], "flat")
    add("batchnorm", [normal(r, 2, 3, 2, 2)], "nchw")
    running = {"running_mean": r.normal(size=3), "running_var": r.uniform(0.5, 2, 3)}
    add("batchnorm", [normal(r, 2, 3, 2, 2)], "test-running", train=False, state=running)
    add("batchnorm", [normal(r, 3, 3)], "test-batch-stats", train=False)

    add("softmax_loss", [normal(r, 3, 5), ids(r, 3, vocab=5)], "plain")
    add("softmax_loss", [normal(r, 4, 1, 6), ids(r, 4, 1, vocab=6)], "scaled-shaped",
        attrs={"scale": 2.5, "topk": 2})
    add("euclidean_loss", [normal(r, 2, 4), normal(r, 2, 4)], "plain")
    add("euclidean_loss", [normal(r, 3, 4), normal(r, 3, 2, 2)], "reshaped-target")

    add("concat", [normal(r, 2, 3), normal(r, 2, 2)], "dim1", attrs={"dim": 1})
    add("concat", [normal(r, 2, 2, 3), normal(r, 2, 2, 1), normal(r, 2, 2, 2)], "dim2",
        attrs={"dim": 2})
    add("concat", [ids(r, 2, 3, vocab=9), ids(r, 2, 1, vocab=9)], "ints", attrs={"dim": 1})
    add("slice", [normal(r, 2, 5)], "dim1", attrs={"begin": 1, "end": 4})
    add("slice", [normal(r, 2, 3, 4)], "dim2", attrs={"begin": 0, "end": 2, "dim": 2})
    add("split", [normal(r, 2, 3)], "plain")
    add("input", [normal(r, 2, 12)], "reshape", attrs={"shape": (3, 2, 2)})
    add("input", [ids(r, 2, vocab=10)], "labels", attrs={"shape": None})
    add("input", [normal(r, 2, 4)], "plain", attrs={"shape": None})
    add("embedding", [np.array([[0, 2, 2], [3, 0, 2]], dtype=np.int32)], "repeats",
        attrs={"vocab": 4, "dim": 2})
    add("onehot", [ids(r, 2, 3, vocab=5)], "plain", attrs={"vocab": 5})
    add("argmax", [normal(r, 3, 4)], "plain")

    add("rbm", [r.uniform(size=(2, 6))], "binary", attrs={"hidden": 4})
    add("rbm", [r.uniform(size=(3, 5))], "gaussian", attrs={"hidden": 3, "gaussian_hidden": True})

    for op in ("gru", "rnn"):
        add(op, [normal(r, 2, 3)], "h_prev", attrs={"hidden": 4},
            state={"h_prev": normal(r, 2, 4)}, state_grads={"h_prev": "dh_prev"})
        add(op, [normal(r, 3, 2)], "step0", attrs={"hidden": 3})
    add("rnn", [normal(r, 2, 3)], "relu", attrs={"hidden": 4, "act": "relu"},
        state={"h_prev": normal(r, 2, 4)}, state_grads={"h_prev": "dh_prev"})
    add("lstm", [normal(r, 2, 3)], "h_c_prev", attrs={"hidden": 4},
        state={"h_prev": normal(r, 2, 4), "c_prev": normal(r, 2, 4)},
        state_grads={"h_prev": "dh_prev", "c_prev": "dc_prev"}, extra_out={"c": "dc"})
    add("lstm", [normal(r, 3, 2)], "step0", attrs={"hidden": 3})
    return c


# (shape, kernel, stride, pad), chosen for Caffe's ceil rounding and its edge cases.
POOL_GEOMETRIES = [
    ((5, 5), 3, 2, 0),      # windows fit exactly
    ((6, 6), 3, 2, 0),      # ceil: the last window hangs over the edge
    ((5, 6), 3, 2, 1),      # padding, not square
    ((4, 4), 3, 2, 2),      # ceil would add a window starting in the padding: dropped
    ((6, 6), 2, 2, 1),      # last window half padding: avg divides by 2, not 4 or 1
    ((5, 5), 1, 3, 0),      # stride > kernel
    ((3, 3), 3, 1, 1),
]

CASES = make_cases()
# Cases with something to differentiate: a float input or a param (embedding's table).
GRAD_CASES = [c for c in CASES if c.op not in NO_GRADIENT and
              (not all(is_int(x) for x in c.inputs) or c.params())]


def by_name(cases):
    return pytest.mark.parametrize("case", cases, ids=[c.name for c in cases])


def run_forward(case, xs, params, state=None):
    ctx = case.ctx(state)
    return case.opdef.forward(case.full_attrs(), xs, params, ctx), ctx


# --------------------------------------------------------------------------------------------
# Coverage of the registry

@pytest.mark.parametrize("name", OPS.names())
def test_every_op_has_a_reference(name):
    op = OPS[name]
    assert op.forward is not None, f"{name} has no numpy forward"
    assert op.backward is not None, f"{name} has no numpy backward"


@pytest.mark.parametrize("name", OPS.names())
def test_every_op_is_exercised(name):
    assert any(c.op == name for c in CASES), f"no reference case for {name}"
    if name not in NO_GRADIENT:
        assert any(c.op == name for c in GRAD_CASES), f"no gradient check for {name}"


@by_name(CASES)
def test_forward_shape_matches_shape_rule(case):
    params = case.params()
    y, _ = run_forward(case, case.inputs, params)
    out = case.out_info()
    assert y.shape == (len(case.inputs[0]),) + out.shape
    if out.dtype == "int32":
        assert is_int(y)
    else:
        assert y.dtype == np.float64
    # the inputs are never modified in place
    fresh = {c.name: c for c in make_cases()}[case.name]
    for x, x0 in zip(case.inputs, fresh.inputs):
        np.testing.assert_array_equal(x, x0)


# --------------------------------------------------------------------------------------------
# Gradients by central differences

def numeric_grad(f, a):
    """∂f/∂a by central differences, perturbing a (a float64 array) in place."""
    g = np.zeros_like(a)
    flat, gflat = a.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + EPS
        up = f()
        flat[i] = old - EPS
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * EPS)
    return g


@by_name(GRAD_CASES)
def test_backward_matches_finite_differences(case):
    attrs, op = case.full_attrs(), case.opdef
    xs = [np.array(x) for x in case.inputs]
    params = case.params()
    state = {k: np.array(v) for k, v in case.state.items()}
    is_loss = op.role == "loss"
    rng = np.random.default_rng(99)
    y0, ctx0 = run_forward(case, xs, params, state)
    proj = rng.normal(size=y0.shape)
    extra = {k: rng.normal(size=ctx0.cache[k].shape) for k in case.extra_out}
    scale = attrs.get("scale", 1.0)

    def objective():
        y, ctx = run_forward(case, xs, params, state)
        if is_loss:                                  # backward is d(scale·mean loss)
            return scale * y.mean()
        return float((y * proj).sum() + sum((ctx.cache[k] * v).sum() for k, v in extra.items()))

    y, ctx = run_forward(case, xs, params, state)
    for out_key, grad_key in case.extra_out.items():
        ctx.cache[grad_key] = extra[out_key]
    dxs, dparams = op.backward(attrs, xs, params, y, None if is_loss else proj, ctx)

    assert len(dxs) == len(xs)
    assert set(dparams) == set(params)
    for i, x in enumerate(xs):
        if is_int(x):
            assert dxs[i] is None, f"integer source {i} should get None"
            continue
        assert dxs[i].shape == x.shape
        np.testing.assert_allclose(dxs[i], numeric_grad(objective, xs[i]), rtol=RTOL, atol=ATOL,
                                   err_msg=f"source {i}")
    for name, p in params.items():
        assert dparams[name].shape == p.shape
        np.testing.assert_allclose(dparams[name], numeric_grad(objective, p), rtol=RTOL,
                                   atol=ATOL, err_msg=f"param {name}")
    for key, grad_key in case.state_grads.items():
        np.testing.assert_allclose(ctx.cache[grad_key], numeric_grad(objective, state[key]),
                                   rtol=RTOL, atol=ATOL, err_msg=f"state {key}")


@pytest.mark.parametrize("name", sorted(NO_GRADIENT))
def test_ops_without_gradient_return_none(name):
    case = next(c for c in CASES if c.op == name)
    y, ctx = run_forward(case, case.inputs, {})
    dxs, dparams = case.opdef.backward(case.full_attrs(), case.inputs, {}, y, None, ctx)
    assert dxs == [None] and dparams == {}


def test_finite_difference_check_can_fail():
    """The harness is not vacuous: a gradient off by 1 % is caught."""
    a = np.array([0.3, -1.2, 2.0])
    g = numeric_grad(lambda: float((a ** 3).sum()), a)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(3 * a ** 2 * 1.01, g, rtol=RTOL, atol=ATOL)


# --------------------------------------------------------------------------------------------
# Forwards against independent formulations

def fwd(name, xs, params=None, ctx=None, **attrs):
    op = OPS[name]
    full = {**defaults(op.attrs), **attrs}
    return op.forward(full, xs, params or {}, ctx or RefContext())


def sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def test_dense_forward():
    r = np.random.default_rng(0)
    x, w, b = r.normal(size=(2, 3)), r.normal(size=(5, 3)), r.normal(size=5)
    want = np.array([[sum(x[n, i] * w[u, i] for i in range(3)) + b[u] for u in range(5)]
                     for n in range(2)])
    np.testing.assert_allclose(fwd("dense", [x], {"w": w, "b": b}, units=5), want)
    np.testing.assert_allclose(fwd("dense", [x], {"w": w.T.copy(), "b": b}, units=5,
                                   transpose=True), want)


def conv_direct(x, w, b, k, s, p):
    bsz, c, h, wd = x.shape
    f = w.shape[0]
    wk = w.reshape(f, c, k, k)
    oh, ow = (h + 2 * p - k) // s + 1, (wd + 2 * p - k) // s + 1
    y = np.zeros((bsz, f, oh, ow))
    for n in range(bsz):
        for fi in range(f):
            for i in range(oh):
                for j in range(ow):
                    acc = b[fi]
                    for ci in range(c):
                        for di in range(k):
                            for dj in range(k):
                                r, q = i * s - p + di, j * s - p + dj
                                if 0 <= r < h and 0 <= q < wd:
                                    acc += wk[fi, ci, di, dj] * x[n, ci, r, q]
                    y[n, fi, i, j] = acc
    return y


@pytest.mark.parametrize("shape,f,k,s,p", [((2, 2, 5, 5), 3, 3, 2, 1), ((1, 3, 6, 5), 2, 2, 1, 0),
                                           ((2, 1, 4, 4), 2, 3, 3, 2)])
def test_conv_forward_matches_direct_loops(shape, f, k, s, p):
    r = np.random.default_rng(1)
    x, w, b = r.normal(size=shape), r.normal(size=(f, shape[1] * k * k)), r.normal(size=f)
    got = fwd("conv", [x], {"w": w, "b": b}, filters=f, kernel=k, stride=s, pad=p)
    np.testing.assert_allclose(got, conv_direct(x, w, b, k, s, p), rtol=1e-12, atol=1e-12)


def caffe_pool_size(size, k, s, p):
    out = math.ceil((size + 2 * p - k) / s) + 1
    return out - 1 if (out - 1) * s >= size + p else out


def pool_direct(x, k, s, p, mode):
    bsz, c, h, w = x.shape
    oh, ow = caffe_pool_size(h, k, s, p), caffe_pool_size(w, k, s, p)
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))   # zeros, for the average
    y = np.zeros((bsz, c, oh, ow))
    for n in range(bsz):
        for ci in range(c):
            for i in range(oh):
                for j in range(ow):
                    if mode == "max":       # only real pixels compete
                        best = -np.inf
                        for r in range(i * s - p, i * s - p + k):
                            for q in range(j * s - p, j * s - p + k):
                                if 0 <= r < h and 0 <= q < w and x[n, ci, r, q] > best:
                                    best = x[n, ci, r, q]
                        y[n, ci, i, j] = best
                    else:                   # padded zeros count; the overhang past them not
                        r1, q1 = min(i * s + k, h + 2 * p), min(j * s + k, w + 2 * p)
                        win = xp[n, ci, i * s:r1, j * s:q1]
                        y[n, ci, i, j] = win.sum() / win.size
    return y


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("shape,k,s,p", POOL_GEOMETRIES)
def test_pool_forward_matches_direct_loops(mode, shape, k, s, p):
    x = np.random.default_rng(2).normal(size=(2, 3) + shape)
    got = fwd(f"{mode}_pool", [x], kernel=k, stride=s, pad=p)
    np.testing.assert_allclose(got, pool_direct(x, k, s, p, mode), rtol=1e-12, atol=1e-12)


def test_pool_output_sizes():
    # hand-worked Caffe sizes for the geometries above
    assert [caffe_pool_size(*g) for g in [(5, 3, 2, 0), (6, 3, 2, 0), (5, 3, 2, 1), (6, 3, 2, 1),
                                          (4, 3, 2, 2), (6, 2, 2, 1)]] == [2, 3, 3, 4, 3, 4]
    for size in range(1, 9):
        for k in range(1, 5):
            for s in range(1, 5):
                for p in range(0, k):
                    if k <= size + 2 * p:
                        assert pool_out(size, k, s, p) == caffe_pool_size(size, k, s, p)
    # every window starts inside the input or its leading padding (never past the input)
    assert pool_out(5, 1, 3, 0) == 2


def test_max_pool_backward_routes_to_first_maximum():
    x = np.zeros((1, 1, 2, 2))                       # a tie everywhere
    y = fwd("max_pool", [x], kernel=2, stride=2)
    (dx,), _ = OPS["max_pool"].backward({"kernel": 2, "stride": 2, "pad": 0}, [x], {}, y,
                                        np.ones_like(y), RefContext())
    np.testing.assert_array_equal(dx, [[[[1, 0], [0, 0]]]])


def test_activations_forward():
    x = np.linspace(-3, 3, 13).reshape(1, 13)
    np.testing.assert_allclose(fwd("relu", [x]), np.maximum(x, 0))
    np.testing.assert_allclose(fwd("relu", [x], slope=0.2), np.where(x > 0, x, 0.2 * x))
    np.testing.assert_allclose(fwd("sigmoid", [x]), 1 / (1 + np.exp(-x)))
    np.testing.assert_allclose(fwd("tanh", [x]), np.tanh(x))
    np.testing.assert_allclose(fwd("stanh", [x]), 1.7159047 * np.tanh(0.6666667 * x))
    big = np.array([[-800.0, 800.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        np.testing.assert_allclose(fwd("sigmoid", [big]), [[0.0, 1.0]])


def test_dropout():
    x = np.ones((50, 40))
    ctx = RefContext(train=True, rng=np.random.default_rng(3))
    y = fwd("dropout", [x], ctx=ctx, rate=0.25)
    assert set(np.unique(y)) <= {0.0, 1 / 0.75}
    assert abs((y == 0).mean() - 0.25) < 0.03
    (dx,), _ = OPS["dropout"].backward({"rate": 0.25}, [x], {}, y, np.full_like(x, 2.0), ctx)
    np.testing.assert_allclose(dx, 2 * y)
    again = fwd("dropout", [x], ctx=RefContext(train=True, rng=np.random.default_rng(3)),
                rate=0.25)
    np.testing.assert_array_equal(again, y)          # the mask comes from ctx.rng only
    test_ctx = RefContext(train=False)
    np.testing.assert_array_equal(fwd("dropout", [x], ctx=test_ctx, rate=0.25), x)
    (dx,), _ = OPS["dropout"].backward({"rate": 0.25}, [x], {}, x, x * 3, test_ctx)
    np.testing.assert_array_equal(dx, x * 3)


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_lrn_forward_matches_direct_loops(size):
    x = np.random.default_rng(4).normal(size=(2, 4, 2, 3))
    alpha, beta, k = 0.8, 0.75, 2.0
    want = np.empty_like(x)
    for c in range(4):
        lo = c - (size - 1) // 2                     # Caffe's pre_pad
        acc = sum(x[:, j] ** 2 for j in range(max(lo, 0), min(lo + size, 4)))
        want[:, c] = x[:, c] * (k + alpha / size * acc) ** -beta
    got = fwd("lrn", [x], size=size, alpha=alpha, beta=beta, k=k)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_softmax_forward():
    x = np.random.default_rng(5).normal(size=(3, 2, 2)) * 50     # large: needs the shift
    got = fwd("softmax", [x])
    for n in range(3):
        z = x[n].ravel()
        np.testing.assert_allclose(got[n], np.exp(z - z.max()) / np.exp(z - z.max()).sum())


@pytest.mark.parametrize("shape", [(5, 3), (4, 2, 3, 2)])
def test_batchnorm_forward(shape):
    r = np.random.default_rng(6)
    x, w, b = r.normal(size=shape) * 3 + 2, r.normal(size=shape[1]), r.normal(size=shape[1])
    ctx = RefContext(train=True)
    got = fwd("batchnorm", [x], {"w": w, "b": b}, ctx=ctx, eps=1e-5, momentum=0.9)
    for c in range(shape[1]):
        v = x[:, c]
        want = w[c] * (v - v.mean()) / np.sqrt(v.var() + 1e-5) + b[c]
        np.testing.assert_allclose(got[:, c], want)
    means = np.array([x[:, c].mean() for c in range(shape[1])])
    varis = np.array([x[:, c].var() for c in range(shape[1])])
    np.testing.assert_allclose(ctx.cache["running_mean"], 0.1 * means)
    np.testing.assert_allclose(ctx.cache["running_var"], 0.9 + 0.1 * varis)
    # test mode uses the running averages it finds in the cache
    ctx.train = False
    got = fwd("batchnorm", [x], {"w": w, "b": b}, ctx=ctx, eps=1e-5)
    rm, rv = ctx.cache["running_mean"], ctx.cache["running_var"]
    bc = (1, -1) + (1,) * (len(shape) - 2)
    np.testing.assert_allclose(got, w.reshape(bc) * (x - rm.reshape(bc)) /
                               np.sqrt(rv.reshape(bc) + 1e-5) + b.reshape(bc))


def test_softmax_loss_forward_and_accuracy():
    r = np.random.default_rng(7)
    z, label = r.normal(size=(6, 4)), np.array([0, 1, 2, 3, 0, 1], dtype=np.int32)
    for topk in (1, 2, 4):
        ctx = RefContext()
        loss = fwd("softmax_loss", [z, label], ctx=ctx, topk=topk)
        want = np.log(np.exp(z).sum(axis=1)) - z[np.arange(6), label]
        np.testing.assert_allclose(loss, want, rtol=1e-12)
        hits = [label[n] in np.argsort(-z[n])[:topk] for n in range(6)]
        assert ctx.cache["accuracy"] == pytest.approx(np.mean(hits))
    huge = np.array([[1000.0, 0.0]])                     # stable for large logits
    loss = fwd("softmax_loss", [huge, np.array([1], dtype=np.int32)])
    np.testing.assert_allclose(loss, [1000.0])


def test_softmax_loss_gradient_is_singas():
    z, label = np.array([[1.0, 2.0, 0.5], [0.0, 0.0, 0.0]]), np.array([2, 0], dtype=np.int32)
    attrs = {"topk": 1, "scale": 3.0}
    (dz, dl), _ = OPS["softmax_loss"].backward(attrs, [z, label], {}, None, None, RefContext())
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(dz, (p - np.eye(3)[label]) * 3.0 / 2)
    assert dl is None


def test_euclidean_loss():
    x, t = np.array([[1.0, 2.0], [0.0, -1.0]]), np.array([[0.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(fwd("euclidean_loss", [x, t]), [2.5, 2.5])   # ½·Σ(x − t)²
    (dx, dt), _ = OPS["euclidean_loss"].backward({}, [x, t], {}, None, None, RefContext())
    np.testing.assert_allclose(dx, (x - t) / 2)                            # SINGA's (x − t)/B
    np.testing.assert_allclose(dt, -(x - t) / 2)


def test_connection_forwards():
    r = np.random.default_rng(8)
    a, b = r.normal(size=(2, 3, 2)), r.normal(size=(2, 1, 2))
    np.testing.assert_array_equal(fwd("concat", [a, b], dim=1), np.concatenate([a, b], 1))
    np.testing.assert_array_equal(fwd("slice", [a], begin=1, end=3, dim=1), a[:, 1:3])
    np.testing.assert_array_equal(fwd("slice", [a], begin=1, end=2, dim=2), a[:, :, 1:2])
    np.testing.assert_array_equal(fwd("split", [a]), a)
    np.testing.assert_array_equal(fwd("input", [a], shape=(6,)), a.reshape(2, 6))
    i = np.array([[1, 0], [2, 2]], dtype=np.int32)
    np.testing.assert_array_equal(fwd("onehot", [i], vocab=3),
                                  [[[0, 1, 0], [1, 0, 0]], [[0, 0, 1], [0, 0, 1]]])
    w = r.normal(size=(3, 4))
    np.testing.assert_array_equal(fwd("embedding", [i], {"w": w}, vocab=3, dim=4),
                                  np.stack([[w[1], w[0]], [w[2], w[2]]]))
    x = np.array([[0.1, 0.9, 0.3], [2.0, -1.0, 2.0]])
    got = fwd("argmax", [x])
    np.testing.assert_array_equal(got, [1, 0])
    assert is_int(got)


def test_rbm_forward():
    r = np.random.default_rng(9)
    v, w, hb = r.uniform(size=(2, 5)), r.normal(size=(3, 5)), r.normal(size=3)
    params = {"w": w, "vbias": np.zeros(5), "hbias": hb}
    np.testing.assert_allclose(fwd("rbm", [v], params, hidden=3), sig(v @ w.T + hb))
    np.testing.assert_allclose(fwd("rbm", [v], params, hidden=3, gaussian_hidden=True),
                               v @ w.T + hb)


# --------------------------------------------------------------------------------------------
# Recurrent cells against the equations written out per sample

def rand_params(op, d, h, seed):
    r = np.random.default_rng(seed)
    case = Case(op, [np.zeros((1, d))], {"hidden": h}, name=f"{op}-{seed}")
    return {s.name: r.normal(0, 0.5, s.shape)
            for s in case.opdef.params(case.full_attrs(), case.infos(), case.out_info())}


def test_gru_forward_matches_singa_equations():
    d, h = 3, 4
    p = rand_params("gru", d, h, 10)
    r = np.random.default_rng(11)
    x, hp = r.normal(size=(2, d)), r.normal(size=(2, h))
    got = fwd("gru", [x], p, RefContext(cache={"h_prev": hp}), hidden=h)
    for n in range(2):
        xv, hv = x[n], hp[n]
        z = sig(p["z_hx"] @ xv + p["z_hh"] @ hv + p["z_b"])
        rr = sig(p["r_hx"] @ xv + p["r_hh"] @ hv + p["r_b"])
        c = np.tanh(rr * (p["c_hh"] @ hv) + p["c_hx"] @ xv + p["c_b"])
        np.testing.assert_allclose(got[n], z * (hv - c) + c, rtol=1e-12)
    # step 0: no h_prev means zeros
    np.testing.assert_allclose(fwd("gru", [x], p, RefContext(), hidden=h),
                               fwd("gru", [x], p, RefContext(cache={"h_prev": np.zeros((2, h))}),
                                   hidden=h))


def test_lstm_forward_matches_equations():
    d, h = 2, 3
    p = rand_params("lstm", d, h, 12)
    r = np.random.default_rng(13)
    x, hp, cp = r.normal(size=(2, d)), r.normal(size=(2, h)), r.normal(size=(2, h))
    ctx = RefContext(cache={"h_prev": hp, "c_prev": cp})
    got = fwd("lstm", [x], p, ctx, hidden=h)
    for n in range(2):
        pre = {g: p[f"{g}_hx"] @ x[n] + p[f"{g}_hh"] @ hp[n] + p[f"{g}_b"] for g in "ifog"}
        c = sig(pre["f"]) * cp[n] + sig(pre["i"]) * np.tanh(pre["g"])
        np.testing.assert_allclose(ctx.cache["c"][n], c, rtol=1e-12)
        np.testing.assert_allclose(got[n], sig(pre["o"]) * np.tanh(c), rtol=1e-12)


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_rnn_forward_matches_equations(act):
    p = rand_params("rnn", 3, 2, 14)
    r = np.random.default_rng(15)
    x, hp = r.normal(size=(2, 3)), r.normal(size=(2, 2))
    got = fwd("rnn", [x], p, RefContext(cache={"h_prev": hp}), hidden=2, act=act)
    a = x @ p["w_hx"].T + hp @ p["w_hh"].T + p["b"]
    np.testing.assert_allclose(got, np.tanh(a) if act == "tanh" else np.maximum(a, 0))


def test_gru_two_steps_chain_through_cache():
    """Two unrolled steps: gradients of step 1's output w.r.t. step 0's input flow through
    dh_prev, and agree with finite differences of the composed function."""
    d, h = 2, 3
    p = rand_params("gru", d, h, 16)
    r = np.random.default_rng(17)
    x0, x1, proj = r.normal(size=(2, d)), r.normal(size=(2, d)), r.normal(size=(2, h))
    op, attrs = OPS["gru"], {"hidden": h}

    def composed():
        h0 = op.forward(attrs, [x0], p, RefContext())
        return float((op.forward(attrs, [x1], p, RefContext(cache={"h_prev": h0})) * proj).sum())

    ctx0 = RefContext()
    h0 = op.forward(attrs, [x0], p, ctx0)
    ctx1 = RefContext(cache={"h_prev": h0})
    h1 = op.forward(attrs, [x1], p, ctx1)
    op.backward(attrs, [x1], p, h1, proj, ctx1)
    (dx0,), _ = op.backward(attrs, [x0], p, h0, ctx1.cache["dh_prev"], ctx0)
    np.testing.assert_allclose(dx0, numeric_grad(composed, x0), rtol=RTOL, atol=ATOL)


# --------------------------------------------------------------------------------------------
# Contrastive divergence, against a plain transcription of SINGA's CDWorker

def cd_plain(v, w, vb, hb, k, gaussian, noise):
    bsz = v.shape[0]

    def hid(vv):
        a = vv @ w.T + hb
        return a if gaussian else sig(a)

    pos_v = v
    pos_h = hid(pos_v)
    # first negative phase samples the positive hidden values
    if gaussian:
        s = pos_h + noise[0]
    else:
        s = (noise[0] < pos_h).astype(float)
    neg_v = sig(s @ w + vb)
    err = np.sum((pos_v - neg_v) ** 2) / bsz
    neg_h = hid(neg_v)
    # k − 1 more steps sample the negative hidden values
    for step in range(1, k):
        s = neg_h + noise[step] if gaussian else (noise[step] < neg_h).astype(float)
        neg_v = sig(s @ w + vb)
        neg_h = hid(neg_v)
    gw = (neg_h.T @ neg_v - pos_h.T @ pos_v) / bsz
    gvb = (neg_v.sum(0) - pos_v.sum(0)) / bsz
    ghb = (neg_h.sum(0) - pos_h.sum(0)) / bsz
    return gw, gvb, ghb, err


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("gaussian", [False, True])
def test_cd_gradients_match_transcription(k, gaussian):
    r = np.random.default_rng(20 + k)
    bsz, nv, nh = 4, 6, 5
    v = (r.uniform(size=(bsz, nv)) > 0.5).astype(float)
    w, vb, hb = r.normal(0, 0.5, (nh, nv)), r.normal(0, 0.3, nv), r.normal(0, 0.3, nh)
    noise = [r.normal(size=(bsz, nh)) if gaussian else r.uniform(size=(bsz, nh))
             for _ in range(k)]
    grads, err = cd_gradients(v, w, vb, hb, k, gaussian, noise)
    gw, gvb, ghb, want_err = cd_plain(v, w, vb, hb, k, gaussian, noise)
    np.testing.assert_allclose(grads["w"], gw, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grads["vbias"], gvb, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grads["hbias"], ghb, rtol=1e-12, atol=1e-14)
    assert err == pytest.approx(want_err, rel=1e-12)
    assert set(grads) == {"w", "vbias", "hbias"}


def test_cd_bernoulli_sampling_direction():
    """Uniforms of 0 turn every hidden unit on and uniforms of 1 turn them all off, so the
    reconstructions are σ(ΣW + vbias) and σ(vbias)."""
    v = np.ones((1, 2))
    w, vb, hb = np.array([[1.0, -2.0], [0.5, 0.5]]), np.array([0.1, -0.1]), np.zeros(2)
    _, err_on = cd_gradients(v, w, vb, hb, 1, False, [np.zeros((1, 2))])
    _, err_off = cd_gradients(v, w, vb, hb, 1, False, [np.ones((1, 2))])
    assert err_on == pytest.approx(np.sum((1 - sig(w.sum(0) + vb)) ** 2))
    assert err_off == pytest.approx(np.sum((1 - sig(vb)) ** 2))


def test_cd_gradients_accept_a_generator():
    r = np.random.default_rng(30)
    v, w = r.uniform(size=(3, 4)), r.normal(size=(2, 4))
    a, ea = cd_gradients(v, w, np.zeros(4), np.zeros(2), 2, False, np.random.default_rng(1))
    b, eb = cd_gradients(v, w, np.zeros(4), np.zeros(2), 2, False, np.random.default_rng(1))
    np.testing.assert_array_equal(a["w"], b["w"])
    assert ea == eb
