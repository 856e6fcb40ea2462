"""SGD (plain or with momentum) applied by the GEMM that computes a weight's gradient
(compiler/fuse_update.py):
which updates move there, that training follows the plan with the separate update kernels,
and which runs keep those kernels."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest

import singa_dsl
from singa_dsl.compiler.fuse_update import fuse_sgd
from singa_dsl.compiler.plan import Plan
from singa_dsl.run import compile_plan, training_plan
from singa_dsl.runtime.trainer import Trainer

NET = """
job fuse {{ steps: 6  seed: 3 }}
data d {{ train: synthetic(shape: [200], classes: 5, size: 96, batch: 16) }}
net n {{
  x    = input(d.image)
  e    = dense(x, 300, w: param(init: uniform(-0.1, 0.1), lr_scale: 0.5, wd_scale: 2))
  h    = tanh(e)
  f    = dense(h, 200{share})
  g    = dense(f, 5)
  loss = softmax_loss(g, d.label)
}}
algorithm bp
updater {updater}
"""
ROOT = pathlib.Path(__file__).resolve().parents[2]
PLAIN = "sgd { lr: step(0.2, gamma: 0.5, every: 2)  weight_decay: 0.01 }"
MOMENTUM = "sgd { lr: step(0.1, gamma: 0.5, every: 2)  momentum: 0.9  weight_decay: 0.01 }"


def _program(updater: str = PLAIN, share: str = ""):
    return singa_dsl.parse(NET.format(updater=updater, share=share), "fuse.singa")


def _params(trainer) -> dict[str, np.ndarray]:
    return {p.key: trainer.executor.read(p.buffer, p.shape) for p in trainer.plan.params}


def _history(trainer) -> dict[str, np.ndarray]:
    return {s: trainer.executor.read(s, p.shape) for p in trainer.plan.params for s in p.state}


@pytest.mark.parametrize("updater", [PLAIN, MOMENTUM], ids=["plain", "momentum"])
def test_each_weight_is_updated_by_its_gradient_gemm_and_training_is_unchanged(tmp_path,
                                                                              updater):
    """Weight decay, a wd_scale, an lr_scale and a step schedule: every step, every param
    (and momentum's history) of the fused plan equals what the separate sgd kernels give
    (float32 rounding apart).  e's dW (300×200) is a packed GEMM; g's (5×200) stores blocks
    over C's edges, whose lanes another work-item owns."""
    plain = compile_plan(_program(updater))
    fused = fuse_sgd(plain)
    assert {u.param for u in fused.fused_updates} == {"e.w", "f.w", "g.w"}
    assert {u.param for u in fused.updates} == {"e.b", "f.b", "g.b"}
    update = dict(fused.kernels.launch_lists)["update"]
    for u in fused.updates:                       # renumbered: each points at its own launch
        assert update[u.index].args[0] == ("buf", f"param:{u.param}")
    buffers = {b.name for b in fused.kernels.buffers}
    assert "pgrad:e.w" not in buffers and "pgrad:e.b" in buffers
    assert Plan.from_json(fused.to_json()) == fused

    trainers = [Trainer(p, workspace=str(tmp_path / name), quiet=True)
                for name, p in (("plain", plain), ("fused", fused))]
    for t in trainers:
        t.init_params()
    start = _params(trainers[0])
    for step in range(6):
        losses = [t.train_step(step)[0] for t in trainers]
        assert losses[1] == pytest.approx(losses[0], rel=1e-5)
        a, b = (_params(t) | _history(t) for t in trainers)
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_allclose(b[key], a[key], rtol=2e-5, atol=2e-6, err_msg=key)
    moved = {k: float(np.abs(a[k] - start[k]).max()) for k in start}
    assert min(moved.values()) > 1e-4, moved     # every param trained: not a no-op compared


@pytest.mark.parametrize("updater", [
    "sgd { lr: 0.1  momentum: 0.9  clip: 1 }",    # clipping needs g
    "adagrad { lr: 0.1 }",
])
def test_rules_that_need_the_gradient_keep_their_update_kernels(updater):
    plan = compile_plan(_program(updater))
    assert fuse_sgd(plan) is plan


def test_a_weight_shared_by_two_layers_keeps_its_update_kernel():
    """f uses e's weights transposed: both layers' GEMMs add into one gradient."""
    fused = fuse_sgd(compile_plan(_program(share=", w: share(e.w, transpose: true)")))
    assert {u.param for u in fused.fused_updates} == {"g.w"}
    assert "e.w" in {u.param for u in fused.updates}


def test_on_nan_skip_trains_with_the_update_kernels():
    """--on-nan skip checks a step before any update: nothing is fused, and a Trainer
    refuses a fused plan in that mode."""
    program = _program()
    assert training_plan(program, None).fused_updates
    skip = training_plan(program, None, on_nan="skip")
    assert not skip.fused_updates
    with pytest.raises(ValueError, match="on-nan skip"):
        Trainer(fuse_sgd(skip), quiet=True, on_nan="skip")


def test_cd_weight_statistics_fuse_with_their_gemm_scale(tmp_path):
    """CD's ΔW is one GEMM, [h⁻; h⁺]ᵀ·[v⁻; −v⁺] with alpha = 1/B: the fused momentum step
    must keep that scale (samples/rbm1.singa: sgd with momentum and weight decay)."""
    program = singa_dsl.load(ROOT / "samples" / "rbm1.singa")
    plain = compile_plan(program)
    fused = fuse_sgd(plain)
    assert [u.param for u in fused.fused_updates] == ["rbm.w"]
    trainers = [Trainer(p, workspace=str(tmp_path / name), quiet=True)
                for name, p in (("plain", plain), ("fused", fused))]
    for t in trainers:
        t.init_params()
    for step in range(4):
        losses = [t.train_step(step)[0] for t in trainers]
        assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    a, b = (_params(t) | _history(t) for t in trainers)
    for key in a:
        np.testing.assert_allclose(b[key], a[key], rtol=2e-5, atol=2e-6, err_msg=key)
