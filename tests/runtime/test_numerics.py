"""NaN/Inf in a training step: ``--on-nan stop`` (the default) exits 6 naming the layer and
the tensor where the first non-finite value appeared; ``--on-nan skip`` drops that step's
update, puts back what the step moved, counts it, and goes on."""
from __future__ import annotations

import json
import math
import pathlib

import numpy as np
import pytest

import singa_dsl
from singa_dsl import cli
from singa_dsl.compiler.fuse_update import fuse_sgd
from singa_dsl.run import compile_plan
from singa_dsl.runtime import numerics
from singa_dsl.runtime.trainer import NumericalError, Trainer

PROGRAM = """
job nan {{ steps: {steps}  display: every(4)  seed: 1  workspace: "{ws}" }}
data d {{ train: npz("data.npz", batch: 8) }}
net n {{
  x    = input(d.image)
  fc1  = dense(x, 16, w: {w1})
  h1   = relu(fc1)
  fc2  = dense(h1, 3, w: {w2})
  loss = softmax_loss(fc2, d.label{loss_args})
}}
algorithm bp
updater sgd {{ lr: {lr} }}
"""
RECORDS = 40          # 5 batches of 8 per epoch, in order (no shuffle)


def _write(tmp_path, *, steps=12, w1="uniform(-0.3, 0.3)", w2="uniform(-0.3, 0.3)", lr=0.1,
           inf_at=None, loss_args="") -> pathlib.Path:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (RECORDS, 8)).astype(np.float32)
    if inf_at is not None:
        x[inf_at, 3] = np.inf
    np.savez(tmp_path / "data.npz", x=x, y=(np.arange(RECORDS) % 3).astype(np.int32))
    path = tmp_path / "nan.singa"
    path.write_text(PROGRAM.format(steps=steps, ws=tmp_path / "ws", w1=w1, w2=w2, lr=lr,
                                   loss_args=loss_args))
    return path


def _run_cli(capsys, *argv) -> tuple[int, str]:
    code = cli.main(["run", *map(str, argv), "--quiet"])
    return code, capsys.readouterr().err


def test_a_layer_that_overflows_is_named_with_its_tensor(tmp_path, capsys):
    """fc2's weights are so large that its sums overflow: fc1 and h1 stay finite."""
    code, err = _run_cli(capsys, _write(tmp_path, w2="constant(3e38)"))
    print(err)
    assert code == 6
    assert "numerics check at step 0: layer 'fc2' produced non-finite values in its output" \
        in err
    assert "tensor train:act:fc2" in err and "Inf of 24 values" in err
    assert "Traceback" not in err


def test_an_overflow_in_an_activation_applied_by_its_producer_names_both(tmp_path, capsys):
    """fc1's sums overflow; its GEMM applies h1's relu as it stores, so the first non-finite
    tensor is h1's output, written by fc1's kernel."""
    code, err = _run_cli(capsys, _write(tmp_path, w1="constant(3e38)"))
    assert code == 6
    assert "numerics check at step 0: layer 'fc1' produced non-finite values in the output " \
           "of 'h1', which its kernel computes (" in err, err
    assert "tensor train:act:h1)" in err and "Traceback" not in err


@pytest.mark.parametrize("on_nan", ["stop", "skip"])
def test_a_weight_gradient_that_overflows_is_named_as_that_param(tmp_path, capsys, on_nan):
    """h1 is ~1e11, the loss's gradient ~1e29 (scale: 1e30), fc2's weights 0: the forward
    pass, the loss and every layer's gradient stay finite, fc2.w's gradient (~1e40) does not.
    By default the GEMM computing it applies plain SGD in place and raises its flag (the
    gradient is never stored: not counted); under --on-nan skip it is stored and scanned (every
    step is skipped, until the 20th in a row ends the run)."""
    path = _write(tmp_path, steps=25, w1="constant(1e11)", w2="constant(0)",
                  loss_args=", scale: 1e30")
    code, err = _run_cli(capsys, path, "--on-nan", on_nan)
    assert code == 6, err
    step = 0 if on_nan == "stop" else 19
    found = (f"numerics check at step {step}: the backward pass of layer 'fc2' produced "
             "non-finite values in the gradient of param fc2.w (")
    assert found in err, err
    counts = err.split(found, 1)[1].split(";", 1)[0]
    assert counts == ("NaN or Inf among 48 values" if on_nan == "stop" else "48 Inf of 48 values")
    assert "tensor pgrad:fc2.w" in err and "Traceback" not in err


def test_inf_in_the_data_is_named_as_the_data_field(tmp_path, capsys):
    """Record 19 holds an Inf: the third batch (step 2) carries it into the net."""
    code, err = _run_cli(capsys, _write(tmp_path, inf_at=19))
    assert code == 6
    assert "hint: a data file holds it" in err
    assert "numerics check at step 2: the data field 'd.image' fed to the net holds " \
           "non-finite values (1 Inf of 64 values; tensor train:data:d.image)" in err, err


def test_a_diverging_run_stops_at_the_first_non_finite_step(tmp_path, capsys):
    code, err = _run_cli(capsys, _write(tmp_path, steps=60, lr=1e12))
    print(err)
    assert code == 6
    assert "numerics check at step" in err and "produced non-finite values in" in err
    assert "tensor train:" in err or "tensor pgrad:" in err
    assert "--on-nan skip" in err and "Traceback" not in err
    records = [json.loads(l) for l in (tmp_path / "ws" / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss"]) for r in records)


def test_skip_drops_the_steps_that_see_the_bad_record_and_goes_on(tmp_path):
    """Record 19 is in batch 2 of every 5: in 23 steps, steps 2, 7, 12, 17, 22 are skipped.
    A skipped step leaves the params exactly as they were."""
    path = _write(tmp_path, steps=23, inf_at=19)
    trainer = Trainer(compile_plan(singa_dsl.load(path)), quiet=True, on_nan="skip")
    real_step = trainer.train_step
    skipped, unchanged = [], []

    def watched(step):
        before = {p.key: trainer.executor.read(p.buffer) for p in trainer.plan.params}
        out = real_step(step)
        if trainer.last_step_skipped:
            skipped.append(step)
            unchanged.append(all(np.array_equal(before[p.key], trainer.executor.read(p.buffer))
                                 for p in trainer.plan.params))
        return out
    trainer.train_step = watched
    records = trainer.run()
    assert skipped == [2, 7, 12, 17, 22] and all(unchanged)
    train = [r for r in records if r["phase"] == "train"]
    assert sum(r.get("skipped", 0) for r in train) == 5
    assert all(math.isfinite(r["loss"]) for r in train)
    assert "data field 'd.image'" in trainer.skip_note and "step 22" in trainer.skip_note
    for p in trainer.plan.params:
        assert np.isfinite(trainer.executor.read(p.buffer)).all()


def test_skip_gives_up_when_every_step_is_non_finite(tmp_path, capsys):
    code, err = _run_cli(capsys, _write(tmp_path, steps=60, w2="constant(3e38)"), "--on-nan",
                         "skip")
    assert code == 6
    assert "20 steps in a row were skipped for NaN/Inf; the last: numerics check at step 19: " \
           "layer 'fc2'" in err, err


def test_skip_puts_back_the_running_state_a_bad_step_moved(tmp_path):
    """batchnorm's running averages are moved by the train forward; a skipped step must not
    leave them poisoned with the Inf it saw."""
    path = _write(tmp_path, steps=4, inf_at=19)
    path.write_text(path.read_text().replace("h1   = relu(fc1)", "h1   = relu(batchnorm(fc1))"))
    trainer = Trainer(compile_plan(singa_dsl.load(path)), quiet=True, on_nan="skip")
    trainer.run()
    running = [n for n in trainer.executor.buffer_names if n.startswith("bn:")]
    assert running
    for name in running:
        assert np.isfinite(trainer.executor.read(name)).all(), name


def test_the_check_order_is_the_order_the_step_computes():
    program = singa_dsl.parse(PROGRAM.format(steps=1, ws="ws", w1="uniform(-1, 1)",
                                             w2="uniform(-1, 1)", lr=0.1, loss_args="")
                              .replace('npz("data.npz", batch: 8)',
                                       'digits(split: "train", batch: 8)')
                              .replace("fc1  = dense(x, 16,", "fc1  = dense(x, 16,"),
                              "order.singa")
    order = [b for b, _ in numerics.checked_buffers(compile_plan(program))]
    acts = [b for b in order if ":act:" in b]
    grads = [b for b in order if ":grad:" in b]
    assert order[0].startswith("train:data:")
    assert acts == ["train:act:h1", "train:act:fc2"]    # fc1's GEMM applies h1's relu
    assert grads == ["train:grad:fc2", "train:grad:h1", "train:grad:fc1"]
    assert order.index(acts[-1]) < order.index("train:loss:loss") < order.index(grads[0])
    # with the weights' SGD in their gradient GEMMs, the diagnosis still meets each weight's
    # gradient where the step computes it (that GEMM), though it is never stored
    fused = fuse_sgd(compile_plan(program))
    assert {u.param for u in fused.fused_updates} == {"fc1.w", "fc2.w"}
    assert [b for b, _ in numerics.checked_buffers(fused, fused=True)] == order
    assert "pgrad:fc1.w" not in [b for b, _ in numerics.checked_buffers(fused)]


def test_on_nan_must_be_stop_or_skip(tmp_path):
    with pytest.raises(Exception, match="on_nan must be one of stop, skip"):
        Trainer(compile_plan(singa_dsl.load(_write(tmp_path))), quiet=True, on_nan="ignore")
