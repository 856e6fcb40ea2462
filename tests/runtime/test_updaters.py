"""Updaters: the numpy reference against SINGA's formulas, and the OpenCL kernels against
the reference.

``singa_update`` below is a separate, plain float64 transcription of SINGA v0.3's
``src/utils/updater.cc`` (one branch per rule, values computed as new arrays, not in place),
so it shares no code with runtime/updaters.py beyond the arguments it is given.
"""
import json
import re

import numpy as np
import pyopencl as cl
import pytest

from singa_dsl.errors import SingaConfigError
from singa_dsl.runtime.schedules import ScheduleSpec, learning_rate
from singa_dsl.runtime.updaters import (UPDATE_CHUNK, UPDATERS, UpdaterSpec, clip_range,
                                        kernel_args, kernel_source, launch_size)

STEPS = 100
LR_SCALE, WD_SCALE, GRAD_SCALE = 2.0, 0.5, 0.25
SCHEDULE = ScheduleSpec("step", {"base": 0.02, "every": 30, "gamma": 0.5})

# One configuration per rule; clip is set on every one (ignored by the three that don't clip).
CONFIGS = {
    "sgd": dict(momentum=0.9, weight_decay=0.01, clip=1.5),
    "sgd_plain": dict(momentum=0.0, weight_decay=0.004, clip=(-0.5, 1.0)),
    "nesterov": dict(momentum=0.8, weight_decay=0.01, clip=(-0.5, 1.0)),
    "adagrad": dict(weight_decay=0.002, clip=1.0, delta=1e-6),
    "rmsprop": dict(rho=0.95, weight_decay=0.01, clip=(-2.0, 0.5)),
    "adadelta": dict(rho=0.9, weight_decay=0.01, clip=0.1, delta=1e-2),   # moves at lr 0.04
    "adam": dict(beta1=0.8, beta2=0.99, weight_decay=0.01, clip=0.1),
    # a large delta, so that where it is added (to U, after the max) is visible in float32
    "adamax": dict(beta1=0.85, beta2=0.98, weight_decay=0.01, clip=0.1, delta=0.05),
}


def kind_of(config_name):
    return config_name.split("_")[0]


# --- SINGA's updater.cc, transcribed -------------------------------------------------------

def singa_update(kind, w, g, H, U, step, conf):
    """One SINGA update; returns new (w, H, U).  lr/wd scales and grad_scale as the server."""
    momentum = conf.get("momentum", 0.9 if kind == "nesterov" else 0.0)
    delta = conf.get("delta", 1e-8)
    lr = learning_rate(SCHEDULE, step) * LR_SCALE
    wd = conf.get("weight_decay", 0.0) * WD_SCALE
    clip = conf.get("clip")
    if kind in ("sgd", "nesterov", "adagrad", "rmsprop") and clip is not None:
        low, high = (clip[0], clip[1]) if isinstance(clip, tuple) else (-clip, clip)
        if high > low:
            g = np.minimum(np.maximum(g, low), high)
    g = g * GRAD_SCALE
    if wd > 0:
        g = g + w * wd
    if kind == "sgd":
        if momentum > 0:
            H = H * momentum - lr * g
            w = w + H
        else:
            w = w + (-lr) * g
    elif kind == "nesterov":
        tmp = H
        H = H * momentum + lr * g
        tmp = H * (1 + momentum) - tmp * momentum
        w = w - tmp
    elif kind == "adagrad":
        H = H + g ** 2
        w = w - lr * g / np.sqrt(H + delta)
    elif kind == "rmsprop":
        rho = conf["rho"]
        H = H * rho + (1 - rho) * g ** 2
        w = w - lr * g / np.sqrt(H + delta)
    elif kind == "adadelta":
        rho = conf["rho"]
        H = H * rho + (1 - rho) * g ** 2
        tmp = g * np.sqrt(U + delta) / np.sqrt(H + delta)
        U = rho * U + (1 - rho) * tmp ** 2
        w = w - lr * tmp
    elif kind == "adam":
        b1, b2 = conf["beta1"], conf["beta2"]
        H = H * b1 + (1 - b1) * g
        U = U * b2 + (1 - b2) * g ** 2
        w = w - lr * H / np.sqrt(U + delta)
    elif kind == "adamax":
        b1, b2 = conf["beta1"], conf["beta2"]
        H = H * b1 + (1 - b1) * g
        U = np.maximum(U * b2, np.abs(g)) + delta
        w = w - lr * H / U
    else:
        raise AssertionError(kind)
    return w, H, U


def gradients(n, seed):
    """100 gradients, large enough that clipping bites on most elements, with a drift so
    that even a single weight ends far from where it started."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((STEPS, n)) * 2.0 + 0.5).astype(np.float32)


def run_reference(kind, conf, w0, grads):
    defn = UPDATERS[kind]
    w = w0.astype(np.float64)
    state = defn.new_state(w.shape)
    for step, g in enumerate(grads):
        lr = learning_rate(SCHEDULE, step) * LR_SCALE
        wd = conf.get("weight_decay", 0.0) * WD_SCALE
        defn.reference(w, g, state, lr, wd, GRAD_SCALE, conf)
    return w, state


# --- the reference against SINGA -----------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_reference_matches_singa_over_100_steps(name):
    kind, conf = kind_of(name), CONFIGS[name]
    n = 257
    rng = np.random.default_rng(1)
    w0 = rng.uniform(-1, 1, n).astype(np.float32)
    grads = gradients(n, 2)

    w, H, U = w0.astype(np.float64), np.zeros(n), np.zeros(n)
    for step, g in enumerate(grads):
        w, H, U = singa_update(kind, w, g.astype(np.float64), H, U, step, conf)

    got_w, state = run_reference(kind, conf, w0, grads)
    np.testing.assert_allclose(got_w, w, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(state["history"], H, rtol=1e-12, atol=1e-13)
    if "update" in state:
        np.testing.assert_allclose(state["update"], U, rtol=1e-12, atol=1e-13)
    # the run moved the weights: a rule that did nothing would not pass unnoticed
    assert np.abs(got_w - w0).max() > 1e-3


def test_reference_one_step_by_hand():
    # sgd, momentum 0.9: g = 2 * 0.5 = 1; g += 0.5 * w = 1.5; H = -0.1 * 1.5; w = 1 - 0.15
    w, state = np.array([1.0]), {"history": np.zeros(1)}
    UPDATERS["sgd"].reference(w, np.array([2.0]), state, 0.1, 0.5, 0.5, {"momentum": 0.9})
    assert w[0] == pytest.approx(0.85) and state["history"][0] == pytest.approx(-0.15)
    # adamax, b1 0.5, b2 0.5, delta 0.25: H = 0.5 * 4 = 2; U = max(0, 4) + 0.25; w = 1 - 2/4.25
    w, state = np.array([1.0]), UPDATERS["adamax"].new_state(1)
    UPDATERS["adamax"].reference(w, np.array([4.0]), state, 1.0, 0.0, 1.0,
                                 {"beta1": 0.5, "beta2": 0.5, "delta": 0.25})
    assert w[0] == pytest.approx(1 - 2 / 4.25) and state["update"][0] == pytest.approx(4.25)
    # adam has no bias correction: first step moves by lr * 0.1 g / sqrt(0.001 g^2)
    w, state = np.array([0.0]), UPDATERS["adam"].new_state(1)
    UPDATERS["adam"].reference(w, np.array([3.0]), state, 0.01, 0.0, 1.0, {})
    assert w[0] == pytest.approx(-0.01 * 0.3 / np.sqrt(0.001 * 9 + 1e-8))


def test_clip_applies_only_to_the_four_rules_singa_clips():
    g = np.array([5.0, -5.0, 0.1])
    for kind in UPDATERS.names():
        defn = UPDATERS[kind]
        args = {"momentum": 0.5} if "momentum" in {a.name for a in defn.attrs} else {}
        w_free, w_clip = np.ones(3), np.ones(3)
        # State starts at 1, not 0: from zero, adagrad's first step is lr * sign(g), which
        # clipping cannot change.
        state_free = {k: v + 1 for k, v in defn.new_state(3).items()}
        state_clip = {k: v + 1 for k, v in defn.new_state(3).items()}
        defn.reference(w_free, g, state_free, 0.1, 0.0, 1.0, args)
        defn.reference(w_clip, g, state_clip, 0.1, 0.0, 1.0, {**args, "clip": 1.0})
        clipped = kind in ("sgd", "nesterov", "adagrad", "rmsprop")
        assert defn.clips == clipped
        assert (not np.allclose(w_free[:2], w_clip[:2])) == clipped, kind
        assert w_free[2] == w_clip[2]          # inside the range: untouched either way


def test_reference_leaves_the_gradient_alone():
    g = np.array([1.0, -2.0, 3.0])
    UPDATERS["rmsprop"].reference(np.ones(3), g, UPDATERS["rmsprop"].new_state(3), 0.1, 0.1,
                                  0.5, {"clip": 1.0})
    assert g.tolist() == [1.0, -2.0, 3.0]


# --- declarations, specs, kernel arguments -------------------------------------------------

def test_declared_attrs_and_defaults():
    assert UPDATERS.names() == sorted(["sgd", "nesterov", "adagrad", "rmsprop", "adadelta",
                                       "adam", "adamax"])
    expected = {"sgd": {"momentum": 0.0}, "nesterov": {"momentum": 0.9}, "adagrad": {},
                "rmsprop": {"rho": 0.9}, "adadelta": {"rho": 0.9},
                "adam": {"beta1": 0.9, "beta2": 0.999}, "adamax": {"beta1": 0.9, "beta2": 0.999}}
    for kind, own in expected.items():
        attrs = {a.name: a for a in UPDATERS[kind].attrs}
        assert attrs["lr"].required and attrs["lr"].kind == "schedule"
        assert attrs["weight_decay"].default == 0 and attrs["clip"].default is None
        assert attrs["delta"].default == 1e-8 and attrs["clip"].kind == "clip"
        assert {k: attrs[k].default for k in set(attrs) - {"lr", "weight_decay", "clip",
                                                           "delta"}} == own, kind
        assert UPDATERS[kind].kernel_name == f"update_{kind}"
    assert UPDATERS["adam"].state_names == ("history", "update")
    assert UPDATERS["sgd"].state_for({"momentum": 0}) == ()
    assert UPDATERS["sgd"].state_for({"momentum": 0.9}) == ("history",)


def test_attr_ranges_and_clip_validation():
    attrs = {a.name: a for a in UPDATERS["rmsprop"].attrs}
    assert attrs["rho"].range_error(1.5) is not None and attrs["rho"].range_error(0.5) is None
    assert attrs["weight_decay"].range_error(-1e-3) is not None
    assert attrs["delta"].range_error(0) is not None
    sgd = UPDATERS["sgd"]
    assert sgd.validate({"clip": 5}) is None and sgd.validate({"clip": (-1, 2)}) is None
    assert "> 0" in sgd.validate({"clip": 0})
    assert "below" in sgd.validate({"clip": (2, -2)})
    assert "pair" in sgd.validate({"clip": (1, 2, 3)})
    assert clip_range(5) == (-5.0, 5.0) and clip_range([-1, 3]) == (-1.0, 3.0)
    assert clip_range(None) is None


def test_kernel_args_order_and_values():
    spec = UpdaterSpec("adam", SCHEDULE, {"beta1": 0.8, "weight_decay": 0.1, "clip": 3,
                                          "delta": 1e-6})
    args = kernel_args(spec, 35, lr_scale=2.0, wd_scale=0.5, grad_scale=0.25)
    assert list(args) == ["lr", "wd", "grad_scale", "clip_lo", "clip_hi", "hyper0", "hyper1",
                          "delta"]
    assert args["lr"] == pytest.approx(0.02 * 0.5 * 2.0)       # step 35: one halving
    assert args["wd"] == pytest.approx(0.05) and args["grad_scale"] == 0.25
    assert (args["clip_lo"], args["clip_hi"]) == (0.0, 0.0)     # adam does not clip
    assert (args["hyper0"], args["hyper1"], args["delta"]) == (0.8, 0.999, 1e-6)
    sgd = kernel_args(UpdaterSpec("sgd", 0.1, {"clip": [-1, 2], "momentum": 0.7}), 0)
    assert (sgd["clip_lo"], sgd["clip_hi"], sgd["hyper0"], sgd["hyper1"]) == (-1, 2, 0.7, 0)
    assert kernel_args(UpdaterSpec("rmsprop", 0.1, {}), 0)["hyper0"] == 0.9


def test_updater_spec_json_round_trip():
    spec = UpdaterSpec("sgd", SCHEDULE, {"momentum": 0.9, "clip": [-5, 5]})
    back = UpdaterSpec.from_json(json.loads(json.dumps(spec.to_json())))
    assert back == spec and back.args["clip"] == (-5, 5)
    plain = UpdaterSpec("adam", 0.001, {})
    assert UpdaterSpec.from_json(json.loads(json.dumps(plain.to_json()))) == plain
    with pytest.raises(SingaConfigError) as err:
        kernel_args(UpdaterSpec("adamx", 0.1, {}), 0)
    assert "did you mean" in err.value.hint
    with pytest.raises(SingaConfigError):
        UpdaterSpec.from_json({"kind": "sgd"})


# --- the OpenCL kernels against the reference ----------------------------------------------

@pytest.fixture(scope="module")
def opencl():
    ctx = cl.create_some_context(interactive=False)
    queue = cl.CommandQueue(ctx)
    program = cl.Program(ctx, kernel_source()).build(options=["-cl-mad-enable"])
    return ctx, queue, program


def test_kernel_chunk_matches_python_constant(opencl):
    match = re.search(r"#define UPD_CHUNK (\d+)", kernel_source())
    assert match and int(match.group(1)) == UPDATE_CHUNK
    names = {k.function_name for k in opencl[2].all_kernels()}
    assert names == {UPDATERS[kind].kernel_name for kind in UPDATERS.names()}
    assert launch_size(1) == (64, 64)
    assert launch_size(64 * UPDATE_CHUNK + 1) == (128, 64)


@pytest.mark.parametrize("n", [1, 1000, 4099])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_kernel_matches_reference_over_100_steps(opencl, name, n):
    ctx, queue, program = opencl
    kind, conf = kind_of(name), CONFIGS[name]
    spec = UpdaterSpec(kind, SCHEDULE, conf)
    rng = np.random.default_rng(n)
    w0 = rng.uniform(-1, 1, n).astype(np.float32)
    grads = gradients(n, n + 1)

    mf = cl.mem_flags
    w_buf = cl.Buffer(ctx, mf.READ_WRITE | mf.COPY_HOST_PTR, hostbuf=w0)
    g_bufs = [cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=g) for g in grads]
    zeros = np.zeros(n, np.float32)
    used = UPDATERS[kind].state_for(conf)
    # Unused state gets one tiny dummy buffer, as an executor would pass it.
    dummy = cl.Buffer(ctx, mf.READ_WRITE | mf.COPY_HOST_PTR, hostbuf=np.zeros(1, np.float32))
    h_buf = cl.Buffer(ctx, mf.READ_WRITE | mf.COPY_HOST_PTR, hostbuf=zeros) \
        if "history" in used else dummy
    u_buf = cl.Buffer(ctx, mf.READ_WRITE | mf.COPY_HOST_PTR, hostbuf=zeros) \
        if "update" in used else dummy

    kernel = cl.Kernel(program, UPDATERS[kind].kernel_name)
    global_size, local_size = launch_size(n)
    for step in range(STEPS):
        scalars = kernel_args(spec, step, LR_SCALE, WD_SCALE, GRAD_SCALE)
        kernel.set_args(w_buf, g_bufs[step], h_buf, u_buf, np.int32(n),
                        *[np.float32(v) for v in scalars.values()])
        cl.enqueue_nd_range_kernel(queue, kernel, (global_size,), (local_size,))
    w = np.empty(n, np.float32)
    h = np.empty(n, np.float32)
    u = np.empty(n, np.float32)
    cl.enqueue_copy(queue, w, w_buf)
    if "history" in used:
        cl.enqueue_copy(queue, h, h_buf)
    if "update" in used:
        cl.enqueue_copy(queue, u, u_buf)
    queue.finish()

    want_w, want_state = run_reference(kind, conf, w0, grads)
    np.testing.assert_allclose(w, want_w, rtol=5e-5, atol=5e-6)
    if "history" in used:
        np.testing.assert_allclose(h, want_state["history"], rtol=5e-5, atol=5e-6)
    if "update" in used:
        np.testing.assert_allclose(u, want_state["update"], rtol=5e-5, atol=5e-6)
    assert np.abs(w - w0).max() > 1e-3


@pytest.mark.parametrize("kind", sorted(UPDATERS.names()))
def test_kernel_clips_only_for_the_four_rules(opencl, kind):
    """Called with a clip range directly (kernel_args passes none for adadelta, adam and
    adamax), the kernels themselves must still clip only where SINGA does."""
    ctx, queue, program = opencl
    n = 19                                     # two float8 chunks and a tail of 3
    g = np.linspace(-4, 4, n).astype(np.float32)
    mf = cl.mem_flags
    kernel = cl.Kernel(program, UPDATERS[kind].kernel_name)
    global_size, local_size = launch_size(n)
    results = []
    for clip_lo, clip_hi in ((0.0, 0.0), (-0.5, 1.0)):
        bufs = [cl.Buffer(ctx, mf.READ_WRITE | mf.COPY_HOST_PTR, hostbuf=a)
                for a in (np.ones(n, np.float32), g, np.ones(n, np.float32),
                          np.ones(n, np.float32))]
        kernel.set_args(*bufs, np.int32(n), *map(np.float32, (
            0.1, 0.0, 1.0, clip_lo, clip_hi, 0.5, 0.5, 1e-8)))
        cl.enqueue_nd_range_kernel(queue, kernel, (global_size,), (local_size,))
        w = np.empty(n, np.float32)
        cl.enqueue_copy(queue, w, bufs[0])
        queue.finish()
        results.append(w)
    clipped = kind in ("sgd", "nesterov", "adagrad", "rmsprop")
    outside = (g < -0.5) | (g > 1.0)
    assert np.array_equal(results[0][~outside], results[1][~outside])
    assert (not np.allclose(results[0][outside], results[1][outside])) == clipped
