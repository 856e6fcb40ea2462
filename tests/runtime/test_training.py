"""End-to-end BP training on OpenCL (PoCL): one step against an independent numpy float64
implementation, resume equality, and learning on the digits sample."""
from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

import singa_dsl
from singa_dsl.run import compile_plan
from singa_dsl.runtime.trainer import Trainer

ROOT = pathlib.Path(__file__).resolve().parents[2]

MLP = """
job tiny {{ steps: {steps}  display: every(5)  test: every(10, batches: 2)  seed: 3
           checkpoint: every(10)  workspace: "{ws}" }}
data d {{
  train: digits(split: "train", batch: 16, shuffle: true, normalize: (mean: 8, std: 8))
  test:  digits(split: "test", batch: 20, normalize: (mean: 8, std: 8))
}}
net mlp {{
  x    = input(d.image)
  fc1  = dense(x, 23, w: uniform(-0.3, 0.3), b: uniform(-0.1, 0.1))
  h1   = {act}(fc1)
  fc2  = dense(h1, 10, w: gaussian(0, 0.2), b: constant(0.05))
  loss = softmax_loss(fc2, d.label)
}}
algorithm bp
updater sgd {{ lr: {lr}  momentum: 0.9  weight_decay: 0.001 }}
"""


def _program(tmp_path, steps=20, act="stanh", lr="0.05"):
    return singa_dsl.parse(MLP.format(steps=steps, ws=tmp_path / "ws", act=act, lr=lr),
                           "tiny.singa")


def _act(name, z):
    return {"stanh": 1.7159047 * np.tanh(0.6666667 * z), "relu": np.maximum(z, 0),
            "sigmoid": 1 / (1 + np.exp(-z)), "tanh": np.tanh(z)}[name]


def _act_grad(name, z):
    return {"stanh": 1.7159047 * 0.6666667 * (1 - np.tanh(0.6666667 * z) ** 2),
            "relu": (z > 0).astype(float), "sigmoid": _act("sigmoid", z) * (1 - _act("sigmoid", z)),
            "tanh": 1 - np.tanh(z) ** 2}[name]


def numpy_mlp_step(x, y, w1, b1, w2, b2, act):
    """An independent float64 forward/backward of dense-act-dense-softmax_loss."""
    z1 = x @ w1.T + b1
    h = _act(act, z1)
    z2 = h @ w2.T + b2
    p = np.exp(z2 - z2.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    loss = -np.log(p[np.arange(len(y)), y]).mean()
    d2 = p.copy()
    d2[np.arange(len(y)), y] -= 1
    d2 /= len(y)
    g = {"fc2.w": d2.T @ h, "fc2.b": d2.sum(0)}
    dz1 = (d2 @ w2) * _act_grad(act, z1)
    g["fc1.w"], g["fc1.b"] = dz1.T @ x, dz1.sum(0)
    return loss, g


@pytest.mark.parametrize("act", ["stanh", "relu", "sigmoid", "tanh"])
def test_one_step_matches_numpy(tmp_path, act):
    trainer = Trainer(compile_plan(_program(tmp_path, act=act)), quiet=True)
    trainer.init_params()
    ex, train = trainer.executor, trainer.plan.phase("train")
    params = {p.key: ex.read(p.buffer, p.shape).astype(np.float64) for p in trainer.plan.params}
    batch = trainer.readers["train"].next_batch()
    for feed in train.feeds:
        ex.write(feed.buffer, batch[feed.field.split(".")[1]])
    ex.run("train")
    got_loss, _ = trainer._read_losses(train)
    want_loss, want = numpy_mlp_step(batch["image"].astype(np.float64), batch["label"],
                                     params["fc1.w"], params["fc1.b"], params["fc2.w"],
                                     params["fc2.b"], act)
    assert got_loss == pytest.approx(want_loss, rel=1e-4)
    for p in trainer.plan.params:
        np.testing.assert_allclose(ex.read(p.grad, p.shape), want[p.key], rtol=2e-3, atol=2e-5,
                                   err_msg=f"gradient of {p.key} ({act})")
    for r in trainer.readers.values():
        r.close()


def test_update_follows_sgd_momentum_and_weight_decay(tmp_path):
    """Two steps on one fixed batch: params move exactly as SINGA's SGD rule says."""
    trainer = Trainer(compile_plan(_program(tmp_path)), quiet=True)
    trainer.init_params()
    ex, train = trainer.executor, trainer.plan.phase("train")
    batch = trainer.readers["train"].next_batch()
    w = {p.key: ex.read(p.buffer, p.shape).astype(np.float64) for p in trainer.plan.params}
    hist = {k: np.zeros_like(v) for k, v in w.items()}
    for step in range(2):
        for feed in train.feeds:
            ex.write(feed.buffer, batch[feed.field.split(".")[1]])
        ex.run("train")
        grads = {p.key: ex.read(p.grad, p.shape).astype(np.float64) for p in trainer.plan.params}
        trainer._set_learning_rates(step)
        ex.run("update")
        for k in w:
            g = grads[k] + 0.001 * w[k]
            hist[k] = 0.9 * hist[k] - 0.05 * g
            w[k] = w[k] + hist[k]
    for p in trainer.plan.params:
        np.testing.assert_allclose(ex.read(p.buffer, p.shape), w[p.key], rtol=1e-4, atol=1e-6)
    for r in trainer.readers.values():
        r.close()


def _metrics(ws):
    return [{k: r[k] for k in ("phase", "step", "loss", "accuracy") if k in r}
            for r in map(json.loads, (ws / "metrics.jsonl").read_text().splitlines())]


class _Crash(Exception):
    pass


def test_resume_after_a_crash_gives_the_same_metrics(tmp_path):
    full = tmp_path / "full"
    Trainer(compile_plan(_program(full, steps=30)), quiet=True).run()
    crashed = tmp_path / "crashed"
    t = Trainer(compile_plan(_program(crashed, steps=30)), quiet=True)
    real_step = t.train_step

    def crash_at_25(step):
        if step == 25:
            raise _Crash()
        return real_step(step)
    t.train_step = crash_at_25
    with pytest.raises(_Crash):
        t.run()
    assert (crashed / "ws" / "checkpoints" / "step-00000020").exists()
    Trainer(compile_plan(_program(crashed, steps=30)), quiet=True, resume=True).run()
    assert _metrics(crashed / "ws") == _metrics(full / "ws")


def test_digits_mlp_learns(tmp_path):
    records = Trainer(compile_plan(_program(tmp_path, steps=150, act="relu", lr="0.05")),
                      quiet=True).run()
    tests = [r for r in records if r["phase"] == "test"]
    assert tests[0]["accuracy"] < 0.4 and tests[-1]["accuracy"] > 0.85, tests


def test_mnist_mlp_sample_reaches_95_percent(tmp_path):
    program = singa_dsl.load(ROOT / "samples" / "mnist_mlp.singa")
    records = program.run(steps=300, workspace=str(tmp_path / "ws"), quiet=True)
    final = [r for r in records if r["phase"] == "test"][-1]
    print("mnist_mlp 300 steps:", final)
    assert final["accuracy"] >= 0.95


def _checkpoint_bytes(folder: pathlib.Path) -> dict[str, bytes]:
    """Every array of a checkpoint's params and updater state, as raw bytes."""
    out = {}
    for name in ("params.npz", "state.npz"):
        with np.load(folder / name, allow_pickle=False) as z:
            out.update({f"{name}:{k}": z[k].dtype.str.encode() + z[k].tobytes() for k in z.files})
    return out


@pytest.mark.parametrize("net", ["mlp", "batchnorm"])
def test_a_resumed_run_equals_the_uninterrupted_run_bit_for_bit(tmp_path, net):
    """40 steps, a checkpoint every 10; one run is interrupted at step 25 (after the step-20
    checkpoint) and resumed: its checkpoints at 30 and 40 hold the same bytes as the
    uninterrupted run's, and its metrics are the same records.  With batchnorm the running
    averages (which the test phase uses) must travel in the checkpoint too."""
    def program(ws):
        text = MLP.format(steps=40, ws=ws / "ws", act="stanh", lr="0.05")
        if net == "batchnorm":
            text = text.replace("h1   = stanh(fc1)", "h1   = stanh(batchnorm(fc1))")
        return singa_dsl.parse(text, "tiny.singa")
    full = tmp_path / "full"
    Trainer(compile_plan(program(full)), quiet=True).run()
    crashed = tmp_path / "crashed"
    t = Trainer(compile_plan(program(crashed)), quiet=True)
    real_step = t.train_step

    def crash_at_25(step):
        if step == 25:
            raise _Crash()
        return real_step(step)
    t.train_step = crash_at_25
    with pytest.raises(_Crash):
        t.run()
    assert not (crashed / "ws" / "checkpoints" / "step-00000030").exists()
    Trainer(compile_plan(program(crashed)), quiet=True, resume=True).run()
    for step in (30, 40):
        want = _checkpoint_bytes(full / "ws" / "checkpoints" / f"step-{step:08d}")
        got = _checkpoint_bytes(crashed / "ws" / "checkpoints" / f"step-{step:08d}")
        assert got.keys() == want.keys() and len(want) >= 8
        assert [k for k in want if got[k] != want[k]] == [], f"step {step}"
    assert _metrics(crashed / "ws") == _metrics(full / "ws")
