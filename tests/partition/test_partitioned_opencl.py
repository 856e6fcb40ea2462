"""The partitioned step on OpenCL (``compiler/lower_partitioned.py``, every worker of the group
in one process, float32) against the unpartitioned float64 reference
(``runtime.simulate.reference_step``): the same loss, param gradients and layer outputs.

Both sides get the same inputs: data and params are rounded to float32 first, so what is
measured is the float32 arithmetic of the partitioned step alone.  The norm: the largest
element-wise error relative to the largest magnitude of the layer's gradient,

    max |got_p - want_p|  <=  RTOL · max over the layer's params q of max |want_q|
                                                              (RTOL = 1e-4)

for each param p (a layer's weights and bias together are its gradient), and for each layer
output the same with its own largest magnitude; the loss: |got - want| <= RTOL · |want|.  A
tolerance scaled by the gradient's magnitude, not element by element: float32 cannot resolve
an element far below the rest to 1e-4 of itself.  Nor a bias gradient that cancels — it sums
the output gradient over the batch and every position, and hypothesis found one (1 filter,
kernel 1, pad 1) summing to 6.7e-7 from terms ~1e-2, where float32 (the unpartitioned plan
too) is 1.4e-2 off relative to it, 5e-8 relative to the layer's weight gradient.

The generated nets' params are drawn with std 1/sqrt(fan_in) (``step_inputs``' N(0, 0.25)
scaled), so that activations stay O(1): with larger ones the logits saturate and the float32
softmax_loss clamps its probabilities (a per-sample loss of at most -log(1e-30) = 69.08, as in
SINGA) where the float64 reference does not — a difference of both float32 plans, partitioned
or not, that says nothing about partitioning.

Deep generated nets (up to 12 layers) can carry a float32 gradient further than 1e-4 from
float64 whether partitioned or not (hypothesis found 1.99e-4 with the unpartitioned plan as
far off).  Where a param's error passes 1e-4, the check is the issue's own: the partitioned
float32 step must equal the unpartitioned float32 plan to 1e-4, and that plan must itself be
that far from float64 (so the error is float32's, not the partitioning's).

Generated nets (``partition_netgen``: chains and DAGs of conv, max/avg pooling, dense, four
activations, concat on channels and on height, dropout off, softmax_loss) with random sizes,
1-4 workers and a random dimension per layer; plus samples/cifar_convnet.singa and
samples/mnist_mlp.singa at smaller batches with 2 and 4 workers and ``partition: auto``
(and cifar as written, its classifier @feature, on 2)."""
from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

import singa_dsl
from singa_dsl.compiler.lower_partitioned import lower_partitioned
from singa_dsl.compiler.partition_regions import computes_whole
from singa_dsl.compiler.partition_types import payloads
from singa_dsl.run import compile_plan
from singa_dsl.runtime.device import Device
from singa_dsl.runtime.executor import Executor
from singa_dsl.runtime.simulate import reference_step
from singa_dsl.runtime.simulate_cl import run_step

from partition_netgen import dims_for, nets, parse, step_inputs

RTOL = 1e-4
SAMPLES = pathlib.Path(__file__).resolve().parents[2] / "samples"
QUICK = settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def device():
    return Device.open()


def rel_error(got, want, scale=None) -> float:
    """max |got - want| / scale (default max |want|; the error itself when the scale is 0)."""
    if scale is None:
        scale = float(np.max(np.abs(want))) if np.size(want) else 0.0
    err = float(np.max(np.abs(np.asarray(got) - want))) if np.size(want) else 0.0
    return err / scale if scale > 0 else err


def layer_scale(program, grads, key) -> float:
    """The largest magnitude in the gradient of the layer that owns param ``key``."""
    layer = next(p.layer for p in program.net.params if p.key == key)
    return max(float(np.max(np.abs(grads[p.key]))) for p in program.net.params
               if p.layer == layer)


def as_float32(data: dict, values: dict):
    data = {k: v.astype(np.float32).astype(np.float64) if v.dtype.kind == "f" else v
            for k, v in data.items()}
    return data, {k: np.asarray(v, np.float32).astype(np.float64) for k, v in values.items()}


def check_step(device, program, workers, dims=None, data=None, values=None, outputs=True):
    """The OpenCL partitioned step against the float64 reference; returns the worst error."""
    if data is None:
        data, values = step_inputs(program)
        fan_in = {p.key: p.fan_in for p in program.net.params}
        values = {k: v * 2 / np.sqrt(fan_in[k]) for k, v in values.items()}
    data, values = as_float32(data, values)
    ref = reference_step(program.graph, data, values)
    pp = lower_partitioned(program, workers, dims)
    ex = Executor.from_plan(device, pp.plan.kernels)
    got = run_step(pp.plan, data, values, executor=ex,
                   outputs=pp.outputs if outputs else None)
    assert abs(got.loss - ref.loss) <= RTOL * abs(ref.loss), (got.loss, ref.loss)
    worst = 0.0
    unpartitioned = None
    for key in values:
        scale = layer_scale(program, ref.grads, key)
        e = rel_error(got.grads[key], ref.grads[key], scale)
        if e > RTOL:
            # A deep net's float32 gradient can sit further than 1e-4 from float64 with or
            # without partitioning; then the partitioned step must equal the unpartitioned
            # float32 plan (what partitioning promises), and that plan must be as far off.
            if unpartitioned is None:
                plan = compile_plan(program)
                unpartitioned = run_step(plan, data, values,
                                         executor=Executor.from_plan(device, plan.kernels))
            base = unpartitioned.grads[key]
            assert rel_error(got.grads[key], base, scale) <= RTOL, \
                f"gradient of {key}: error {e:.2e}, and it differs from the unpartitioned plan"
            assert rel_error(base, ref.grads[key], scale) > RTOL / 2, \
                f"gradient of {key}: error {e:.2e} where the unpartitioned plan is accurate"
        worst = max(worst, e)
    for layer, out in (ref.outputs.items() if outputs else ()):
        e = rel_error(got.outputs[layer], out)
        assert e <= RTOL, f"output of {layer}: error {e:.2e} of its largest magnitude"
    return pp, worst


def run_case(device, data, max_layers):
    workers = data.draw(st.integers(1, 4), label="workers")
    text, _ = data.draw(nets(workers, max_layers), label="program")
    program = parse(text)
    dims = dims_for(data.draw, program, workers)
    pp, _ = check_step(device, program, workers, dims)
    nodes = payloads(pp.graph)
    event(f"{workers} workers")
    if any(n.kind == "concate" for n in nodes):
        event("concate layers")
    if any(n.kind == "layer" and n.params and any(p.axis is not None for p in n.params)
           for n in nodes):
        event("params split on features")
    if any(n.kind == "layer" and computes_whole(n.layer.op, n.layer.attrs, n.dim)
           for n in nodes):
        event("feature copy of concat(dim 1)")


@QUICK
@given(st.data())
def test_opencl_partitioned_step_equals_float64_reference(device, data):
    run_case(device, data, max_layers=6)


@pytest.mark.slow
@SLOW
@given(st.data())
def test_opencl_partitioned_step_equals_float64_reference_more(device, data):
    run_case(device, data, max_layers=12)


# ---- hand-picked cases the generator reaches rarely ------------------------------------------
HAND = """
  x  = input(d.image)
  c  = conv(x, 4, kernel: 3, pad: 1)
  r  = relu(c)
  p  = max_pool(r, kernel: 2, stride: 2)
  j  = concat(p, p, dim: 1)
  fc = dense(j, 8, transpose: true)
  t  = tanh(fc)
  logits = dense(t, 4)
  loss = softmax_loss(logits, d.label)
"""


@pytest.mark.parametrize("workers,dims", [
    (2, {"fc": "feature", "t": "feature"}),                          # W (in, units): columns
    (2, {"c": "feature", "r": "feature", "p": "feature", "j": "feature"}),  # concat copies
    (4, {"c": "none", "fc": "feature", "logits": "none", "loss": "none"}),
    (4, {"j": "none", "t": "feature"}),
], ids=["transposed-dense-feature", "conv-feature-concat", "none-and-feature", "mixed"])
def test_hand_picked_partitionings(device, workers, dims):
    from partition_netgen import program_text
    program = parse(program_text(HAND.strip().splitlines(), (2, 4, 4), 4))
    pp, _ = check_step(device, program, workers, dims)
    assert any(n.inserted for n in payloads(pp.graph))


def test_feature_copies_address_their_param_slice_by_offset(device):
    """A feature copy's GEMMs read the logical param at an offset (no slice buffer); only the
    bias kernels of conv (no offset argument) get a gathered slice."""
    from partition_netgen import program_text
    program = parse(program_text(HAND.strip().splitlines(), (2, 4, 4), 4))
    pp = lower_partitioned(program, 2, {"c": "feature", "fc": "feature"})
    names = {b.name for b in pp.plan.kernels.buffers}
    assert not any(n.startswith("slice:") and ".w@" in n for n in names)
    assert "slice:param@c.b@1" in names and "slice:pgrad@fc.b@1" in names
    train = dict(pp.plan.kernels.launch_lists)["train"]
    for copy in ("c@1", "fc@1"):
        w = copy.split("@")[0] + ".w"
        gemms = [l for l in train if l.tag == copy and ("buf", f"param:{w}") in l.args]
        assert gemms                    # forward (and fc's dx in the backward)
        assert any(l.tag == copy and ("buf", f"pgrad:{w}") in l.args for l in train)


# ---- the samples -----------------------------------------------------------------------------
def sample(name: str, batch: int, auto: bool = True):
    text = (SAMPLES / f"{name}.singa").read_text()
    text = re.sub(r"batch: \d+", f"batch: {batch}", text)
    if auto:
        text = text.replace("partition: batch", "partition: auto").replace(" @feature", "")
    return singa_dsl.parse(text, f"{name}.singa")


def sample_inputs(program, seed=0):
    """A batch of random inputs (images ~ N(0, 1), labels in range) and the params as the
    program initializes them (the sample's own scales: cifar's conv1 is gaussian(0, 1e-4))."""
    from singa_dsl.runtime.initializers import InitSpec, initialize
    rng = np.random.default_rng(seed)
    block = next(iter(program.data))
    spec = program.data[block].phases["train"]
    loss = next(l for l in program.net.layers if l.op == "softmax_loss")
    classes = loss.in_shapes[0].size
    data = {}
    for name, (shape, dtype) in spec.fields.items():
        size = (program.batch,) + tuple(shape)
        data[f"{block}.{name}"] = (rng.integers(0, classes, size=size).astype(np.int32)
                                   if dtype == "int32" else rng.normal(size=size))
    values = {}
    for p in program.net.params:
        values[p.key] = initialize(InitSpec(p.init.kind, p.init.args), p.shape, p.fan_in,
                                   p.fan_out, rng)
    return data, values


@pytest.mark.parametrize("name,batch,workers", [
    ("cifar_convnet", 8, 2), ("cifar_convnet", 8, 4), ("mnist_mlp", 16, 2),
    ("mnist_mlp", 16, 4)])
def test_samples_with_auto(device, name, batch, workers):
    program = sample(name, batch)
    data, values = sample_inputs(program)
    pp, worst = check_step(device, program, workers, None, data, values, outputs=False)
    dims = {n.of: n.dim for n in payloads(pp.graph) if n.kind == "layer"}
    assert set(dims.values()) <= {"batch", "feature", "none"}


def test_cifar_as_written_hybrid_two_workers(device):
    """SINGA's hybrid.conf: convolutions on the batch, the classifier (ip1 @feature) on its
    features, two workers: connection layers and bridges, same step."""
    program = sample("cifar_convnet", 8, auto=False)
    data, values = sample_inputs(program)
    pp, _ = check_step(device, program, 2, None, data, values, outputs=False)
    kinds = {n.kind for n in payloads(pp.graph)}
    assert {"concate", "bridge_src", "bridge_dst"} <= kinds
    assert any(n.kind == "layer" and n.of == "ip1" and n.dim == "feature"
               for n in payloads(pp.graph))


def _loss_curves(plans, device, tmp_path, steps: int) -> list[list[float]]:
    """Each plan trained ``steps`` SGD steps from its init (a workspace each): the losses."""
    from singa_dsl.runtime.trainer import Trainer
    curves = []
    for plan in plans:
        t = Trainer(plan, device=device, workspace=str(tmp_path / str(len(curves))),
                    quiet=True)
        t.init_params()
        curves.append([t.train_step(s)[0] for s in range(steps)])
        for r in t.readers.values():
            r.close()
    return curves


def test_training_partitioned_follows_unpartitioned(tmp_path, device):
    """A few SGD steps of the partitioned plan (the trainer, --simulate's path) track the
    one-worker plan: same data, same init, losses equal to float32 rounding."""
    from singa_dsl.run import compile_plan
    from partition_netgen import program_text
    program = parse(program_text(HAND.strip().splitlines(), (2, 4, 4), 4).replace(
        "steps: 1", "steps: 5"))
    curves = _loss_curves((compile_plan(program),
                           lower_partitioned(program, 2, {"fc": "feature", "j": "none"}).plan),
                          device, tmp_path, 5)
    np.testing.assert_allclose(curves[1], curves[0], rtol=1e-4)
    assert curves[0][-1] != curves[0][0]


def test_singac_run_simulate(tmp_path, capsys):
    """``singac run FILE --simulate --workers 2`` trains the partitioned plan in one process
    and writes the unpartitioned plan's checkpoint (logical params)."""
    from singa_dsl import cli
    from partition_netgen import program_text
    text = program_text(HAND.strip().splitlines(), (2, 4, 4), 4).replace(
        "steps: 1", "steps: 3").replace("/tmp/singa-partition-tests", str(tmp_path / "ws"))
    text = text.replace("fc = dense(j, 8, transpose: true)",
                        "fc = dense(j, 8, transpose: true) @feature")
    f = tmp_path / "hand.singa"
    f.write_text(text)
    assert cli.main(["run", str(f), "--simulate", "--workers", "2", "--quiet"]) == 0
    assert "simulating 2 worker(s)" not in capsys.readouterr().err      # quiet
    assert any((tmp_path / "ws").rglob("*.npz"))
    assert cli.main(["run", str(f), "--workers", "2", "--quiet"]) != 0  # needs --simulate


TIED = """job tied { steps: 3  workspace: "%s" }
data d { train: synthetic(shape: [6], classes: 4, size: 16, batch: 4) }
net n {
  x = input(d.image)
  enc = dense(x, 4, w: param(name: "W", init: gaussian(0, 0.3)))
  dec = dense(enc, 6, w: share(enc.w), transpose: true)
  top = dense(dec, 4)
  loss = softmax_loss(top, d.label)
}
algorithm bp
updater sgd { lr: 0.1 }
"""


def test_shared_params_on_batch_copies_and_refused_on_features(tmp_path, device):
    """A param shared by two layers (tied weights): batch copies of both accumulate into the
    one owner and train as the unpartitioned plan does; splitting either on its features is
    a located error."""
    from singa_dsl.errors import SingaConfigError
    from singa_dsl.run import compile_plan
    program = singa_dsl.parse(TIED % (tmp_path / "ws"), "tied.singa")
    curves = _loss_curves((compile_plan(program), lower_partitioned(program, 2).plan),
                          device, tmp_path, 3)
    np.testing.assert_allclose(curves[1], curves[0], rtol=1e-5)
    with pytest.raises(SingaConfigError, match="shared with another layer") as e:
        lower_partitioned(program, 2, {"dec": "feature"})
    assert e.value.span.line == 6
