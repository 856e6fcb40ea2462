"""One training step of a small CNN on OpenCL matches PyTorch CPU (where installed) and the
numpy float64 references chained by hand: loss and every parameter gradient."""
from __future__ import annotations

import numpy as np
import pytest

import singa_dsl
from singa_dsl.compiler.ops import OPS
from singa_dsl.compiler.ops.registry import RefContext
from singa_dsl.run import compile_plan
from singa_dsl.runtime.trainer import Trainer

CNN = """
job cnn { steps: 1  seed: 5  workspace: "%s" }
data d { train: digits(split: "train", batch: 12, normalize: (mean: 8, std: 8)) }
net cnn {
  x     = input(d.image, shape: [1, 8, 8])
  conv1 = conv(x, 5, kernel: 3, pad: 1, w: gaussian(0, 0.3), b: uniform(-0.1, 0.1))
  relu1 = relu(conv1)
  pool1 = max_pool(relu1, kernel: 2, stride: 2)
  conv2 = conv(pool1, 4, kernel: 3, stride: 2, pad: 1, w: gaussian(0, 0.3))
  pool2 = avg_pool(conv2, kernel: 2, stride: 1)
  fc    = dense(pool2, 10, w: gaussian(0, 0.3), b: uniform(-0.1, 0.1))
  loss  = softmax_loss(fc, d.label)
}
algorithm bp
updater sgd { lr: 0.1 }
"""


def _opencl_step(tmp_path):
    trainer = Trainer(compile_plan(singa_dsl.parse(CNN % (tmp_path / "ws"))), quiet=True)
    trainer.init_params()
    ex, train = trainer.executor, trainer.plan.phase("train")
    params = {p.key: ex.read(p.buffer, p.shape).astype(np.float64) for p in trainer.plan.params}
    batch = trainer.readers["train"].next_batch()
    for feed in train.feeds:
        ex.write(feed.buffer, batch[feed.field.split(".")[1]])
    ex.run("train")
    loss, _ = trainer._read_losses(train)
    grads = {p.key: ex.read(p.grad, p.shape).astype(np.float64) for p in trainer.plan.params}
    for r in trainer.readers.values():
        r.close()
    return trainer.plan, params, batch, loss, grads


def test_cnn_step_matches_the_chained_numpy_references(tmp_path):
    plan, params, batch, loss, grads = _opencl_step(tmp_path)
    program = singa_dsl.parse(CNN % (tmp_path / "ws"))
    ctx = RefContext(train=True)
    acts, inputs = {"d.image": batch["image"].astype(np.float64), "d.label": batch["label"]}, {}
    for layer in program.net.layers:
        xs = [acts[s] for s in layer.sources]
        ps = {p.slot: params[p.key] for p in layer.params}
        inputs[layer.name] = (xs, ps)
        acts[layer.name] = OPS[layer.op].forward(layer.attrs, xs, ps, ctx)
    assert loss == pytest.approx(float(acts["loss"].mean()), rel=1e-4)
    dys, want = {"loss": None}, {}
    for layer in reversed(program.net.layers):
        if layer.name not in dys:
            continue
        xs, ps = inputs[layer.name]
        dxs, dps = OPS[layer.op].backward(layer.attrs, xs, ps, acts[layer.name],
                                          dys[layer.name], ctx)
        for s, dx in zip(layer.sources, dxs):
            if dx is not None and "." not in s:
                dys[s] = dx
        for p in layer.params:
            want[p.key] = dps[p.slot]
    for key, g in grads.items():
        np.testing.assert_allclose(g, want[key], rtol=2e-3, atol=1e-5, err_msg=key)


def test_cnn_step_matches_pytorch(tmp_path):
    torch = pytest.importorskip("torch", reason="PyTorch CPU is not installed (pip install torch==2.13.0)")
    F = torch.nn.functional
    plan, params, batch, loss, grads = _opencl_step(tmp_path)
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    x = torch.tensor(batch["image"], dtype=torch.float64).reshape(-1, 1, 8, 8)
    y = torch.tensor(batch["label"], dtype=torch.long)
    h = F.conv2d(x, t["conv1.w"].reshape(5, 1, 3, 3), t["conv1.b"], padding=1)
    h = F.max_pool2d(F.relu(h), 2, 2, ceil_mode=True)
    h = F.conv2d(h, t["conv2.w"].reshape(4, 5, 3, 3), t["conv2.b"], stride=2, padding=1)
    h = F.avg_pool2d(h, 2, 1, ceil_mode=True)
    logits = h.reshape(len(y), -1) @ t["fc.w"].T + t["fc.b"]
    ref = F.cross_entropy(logits, y)
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-4)
    for key, g in grads.items():
        np.testing.assert_allclose(g, t[key].grad.numpy(), rtol=2e-3, atol=1e-5, err_msg=key)
