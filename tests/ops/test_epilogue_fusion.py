"""An activation that alone reads a dense or convolution layer is applied by that layer's
kernel as it stores (compiler/lower.py's epilogue_activations): the whole training step —
loss and every param gradient — against the float64 reference of the net."""
from __future__ import annotations

import numpy as np
import pytest

import singa_dsl
from singa_dsl.run import compile_plan
from singa_dsl.runtime.device import Device
from singa_dsl.runtime.executor import Executor
from singa_dsl.runtime.simulate import reference_step
from singa_dsl.runtime.simulate_cl import run_step

RTOL = 1e-4


@pytest.fixture(scope="module")
def device():
    return Device.open()


def _program(shape, layers: str, batch: int):
    dims = ", ".join(map(str, shape))
    return singa_dsl.parse(f"""
job t {{ steps: 1 }}
data d {{ train: synthetic(shape: [{dims}], classes: 4, size: {batch}, batch: {batch}) }}
net n {{
  x    = input(d.image)
{layers}
  loss = softmax_loss(out, d.label)
}}
algorithm bp
updater sgd {{ lr: 0.1 }}
""")


def _step_against_float64(device, program):
    rng = np.random.default_rng(5)
    train = program.data["d"].phases["train"]
    batch = train.args["batch"]
    shape = train.fields["image"][0]
    data = {"d.image": rng.standard_normal((batch, *shape)).astype(np.float32).astype(np.float64),
            "d.label": rng.integers(0, 4, batch).astype(np.int32)}
    values = {p.key: (rng.standard_normal(p.shape) / np.sqrt(p.fan_in)).astype(np.float32)
              .astype(np.float64) for p in program.net.params}
    plan = compile_plan(program)
    got = run_step(plan, data, values, executor=Executor.from_plan(device, plan.kernels))
    ref = reference_step(program.graph, data, values)
    assert got.loss == pytest.approx(ref.loss, rel=RTOL)
    for key, want in ref.grads.items():
        err = np.abs(got.grads[key] - want).max() / np.abs(want).max()
        assert err < RTOL, (key, err)
    return plan


# 520 rows: the forward GEMM packs its operands, and k = 600 runs as two slices of k, the
# first adding the bias, the last applying the activation
@pytest.mark.parametrize("act,batch", [("relu", 5), ("sigmoid", 5), ("tanh", 5), ("stanh", 5),
                                       ("relu", 520), ("stanh", 520)])
def test_dense_applies_the_activation_that_reads_it(device, act, batch):
    program = _program([600], f"""  h    = dense(x, 37)
  a    = {act}(h)
  out  = dense(a, 4)""", batch)
    plan = _step_against_float64(device, program)
    train = dict(plan.kernels.launch_lists)["train"]
    assert not any(l.kernel == f"{act}_fwd" for l in train)          # no pass of its own
    assert any(l.tag == "h" and l.kernel.endswith(f"_{act}") for l in train)
    assert "train:act:h" not in {b.name for b in plan.kernels.buffers}
    if batch == 520:
        slices = [l.kernel for l in train if l.tag == "h" and l.kernel.startswith("sgemm_nt")]
        assert slices == ["sgemm_nt_packed_bias", f"sgemm_nt_packed_{act}"], slices


def test_conv_applies_the_relu_that_reads_it(device):
    program = _program([3, 10, 9], """  c    = conv(x, 6, kernel: 3, stride: 1, pad: 1)
  r    = relu(c)
  out  = dense(r, 4)""", 3)
    plan = _step_against_float64(device, program)
    train = dict(plan.kernels.launch_lists)["train"]
    assert not any(l.kernel == "relu_fwd" for l in train)
    assert "train:act:c" not in {b.name for b in plan.kernels.buffers}


def test_an_activation_whose_input_is_read_twice_runs_on_its_own(device):
    """h feeds the activation and a second layer: h must be stored as it is."""
    program = _program([12], """  h    = dense(x, 8)
  a    = tanh(h)
  b    = dense(h, 8)
  out  = dense(a, 4)
  o2   = euclidean_loss(b, a)""", 4)
    plan = compile_plan(program)
    train = dict(plan.kernels.launch_lists)["train"]
    assert any(l.kernel == "tanh_fwd" for l in train)
    assert "train:act:h" in {b.name for b in plan.kernels.buffers}


def test_a_leaky_relu_runs_on_its_own(device):
    program = _program([12], """  h    = dense(x, 8)
  a    = relu(h, slope: 0.1)
  out  = dense(a, 4)""", 4)
    plan = _step_against_float64(device, program)
    assert any(l.kernel == "relu_fwd" for l in dict(plan.kernels.launch_lists)["train"])
