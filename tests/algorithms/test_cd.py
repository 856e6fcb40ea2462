"""CD-k on OpenCL against a numpy float64 transcription of SINGA's kCD
(``compiler/ops/rbm.py: cd_gradients``), with the same random numbers: the device's
counter-based generator transcribed in numpy (algo_ref.uniform01)."""
from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

import singa_dsl
from singa_dsl.compiler.ops.rbm import cd_gradients
from singa_dsl.run import compile_plan
from singa_dsl.runtime.trainer import Trainer

from algo_ref import cd_noise, uniform01

ROOT = pathlib.Path(__file__).resolve().parents[2]

RBM = """
job cdt {{ steps: {steps}  seed: {seed}  workspace: "{ws}"  display: every(10)
          test: every(20, batches: 2) }}
data d {{
  train: digits(split: "train", batch: {batch}, normalize: (mean: 0, std: 16))
  test:  digits(split: "test", batch: {batch}, normalize: (mean: 0, std: 16))
}}
net n {{
  v   = input(d.image)
  {pre}
  rbm = rbm({src}, {hidden}, gaussian_hidden: {gauss}, w: gaussian(0, 0.1),
            vbias: uniform(-0.2, 0.2), hbias: uniform(-0.2, 0.2))
}}
algorithm cd {{ k: {k} }}
updater sgd {{ lr: 0.1  momentum: 0.5  weight_decay: 0.001 }}
"""


def _program(tmp_path, k=1, gauss=False, hidden=12, batch=8, steps=5, seed=11, feature=False):
    pre = "f = sigmoid(dense(v, 20, w: uniform(-0.5, 0.5), b: constant(0.1)))" if feature else ""
    text = RBM.format(steps=steps, seed=seed, ws=tmp_path / "ws", batch=batch, hidden=hidden,
                      gauss=str(gauss).lower(), k=k, pre=pre, src="f" if feature else "v")
    return singa_dsl.parse(text, "cd.singa")


def _sample_launch(plan):
    train = dict(plan.kernels.launch_lists)["train"]
    launch = next(l for l in train if l.kernel == "rbm_sample")
    args = [a[1] for a in launch.args]
    return args[4], args[5]          # seed, layer


def test_rng_transcription_matches_the_device():
    """The numpy hash gives the device's uniforms bit for bit (via dropout's mask)."""
    import pyopencl as cl
    from singa_dsl.runtime.device import Device
    dev = Device.open()
    src = (ROOT / "compiler" / "ops" / "fastmath.cl").read_text() + \
        (ROOT / "compiler" / "ops" / "rbm.cl").read_text() + """
__kernel void draw(__global float *out, const uint seed, const uint layer, const uint step,
                   const int n) {
    int i = get_global_id(0);
    if (i < n) out[i] = uniform01(seed, layer, step, (uint)i * 7919u);
}"""
    prog = dev.build(src, ("-cl-mad-enable", "-cl-fast-relaxed-math"))
    n = 4096
    out = np.empty(n, np.float32)
    buf = dev.alloc(n * 4)
    prog.draw(dev.queue, (n,), None, buf, np.uint32(123456789), np.uint32(7), np.uint32(99),
              np.int32(n))
    cl.enqueue_copy(dev.queue, out, buf)
    want = uniform01(123456789, 7, 99, np.arange(n, dtype=np.uint64) * 7919)
    np.testing.assert_array_equal(out.astype(np.float64), want)
    assert 0.45 < want.mean() < 0.55


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("gauss", [False, True])
def test_cd_gradients_match_singa_transcription(tmp_path, k, gauss):
    program = _program(tmp_path, k=k, gauss=gauss)
    plan = compile_plan(program)
    trainer = Trainer(plan, quiet=True)
    try:
        trainer.init_params()
        ex, train = trainer.executor, plan.phase("train")
        params = {p.key: ex.read(p.buffer, p.shape).astype(np.float64) for p in plan.params}
        batch = trainer.readers["train"].next_batch()
        for feed in train.feeds:
            ex.write(feed.buffer, batch[feed.field.split(".")[1]])
        step = 37
        ex.write("rng:step", np.array([step], np.int32))
        ex.run("train")
        got_err, _ = trainer._read_losses(train)
        seed, layer = _sample_launch(plan)
        v = batch["image"].astype(np.float64)
        noise = cd_noise(seed, layer, step, k, len(v), 12, gauss)
        want, err = cd_gradients(v, params["rbm.w"], params["rbm.vbias"], params["rbm.hbias"],
                                 k, gauss, noise)
        assert got_err == pytest.approx(err, rel=1e-4)
        for slot in ("w", "vbias", "hbias"):
            p = next(p for p in plan.params if p.key == f"rbm.{slot}")
            np.testing.assert_allclose(ex.read(p.grad, p.shape), want[slot], rtol=1e-3,
                                       atol=2e-6, err_msg=f"{slot}, k={k}, gaussian={gauss}")
    finally:
        for r in trainer.readers.values():
            r.close()


def test_feature_layers_are_fixed_and_only_rbm_params_update(tmp_path):
    plan = compile_plan(_program(tmp_path, feature=True))
    assert {u.param for u in plan.updates} == {"rbm.w", "rbm.vbias", "rbm.hbias"}
    trainer = Trainer(plan, quiet=True)
    trainer.init_params()
    before = {p.key: trainer.executor.read(p.buffer, p.shape) for p in plan.params}
    for step in range(3):
        trainer.train_step(step)
    after = {p.key: trainer.executor.read(p.buffer, p.shape) for p in plan.params}
    for r in trainer.readers.values():
        r.close()
    for key in ("f.dense.w", "f.dense.b"):
        np.testing.assert_array_equal(after[key], before[key])
    assert not np.allclose(after["rbm.w"], before["rbm.w"])


def test_cd_is_reproducible_and_reports_reconstruction_error(tmp_path):
    runs = []
    for name in ("a", "b"):
        records = Trainer(compile_plan(_program(tmp_path / name, steps=20)), quiet=True).run()
        runs.append([(r["phase"], r["step"], r["loss"]) for r in records])
        metrics = [json.loads(l) for l in
                   (tmp_path / name / "ws" / "metrics.jsonl").read_text().splitlines()]
        assert all(r["metric"] == "reconstruction_error" for r in metrics)
    assert runs[0] == runs[1]


def test_plan_json_round_trip(tmp_path):
    from singa_dsl.compiler.plan import Plan
    plan = compile_plan(_program(tmp_path, k=2, feature=True))
    again = Plan.from_json(json.loads(plan.dumps()))
    assert again.to_json() == plan.to_json()      # (launch lists come back in name order)
    assert again.metric["name"] == "reconstruction_error"
    assert dict(again.kernels.launch_lists) == dict(plan.kernels.launch_lists)


def test_rbm1_reconstruction_error_falls(tmp_path):
    program = singa_dsl.load(ROOT / "samples" / "rbm1.singa")
    records = program.run(steps=150, workspace=str(tmp_path / "rbm1"), quiet=True)
    train = [r for r in records if r["phase"] == "train"]
    tests = [r for r in records if r["phase"] == "test"]
    print("rbm1 150 steps: train", train[0]["loss"], "->", train[-1]["loss"],
          "test", tests[0]["loss"], "->", tests[-1]["loss"])
    assert train[-1]["loss"] < 0.5 * train[0]["loss"]
    assert tests[-1]["loss"] < 0.5 * tests[0]["loss"]
