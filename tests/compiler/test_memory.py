"""Memory per device, estimated at check time from shapes alone, and the fit check that runs
before anything is allocated: a program too large for the device is a located error."""
from __future__ import annotations

import pathlib
import time
import tracemalloc

import pytest

import singa_dsl
from singa_dsl import cli
from singa_dsl.compiler import memory
from singa_dsl.errors import SingaConfigError, SingaError
from singa_dsl.run import compile_plan

ROOT = pathlib.Path(__file__).resolve().parents[2]

MLP = """job big {{ steps: 10  workspace: "{ws}" }}
data d {{
  train: digits(split: "train", batch: {batch})
  test:  digits(split: "test", batch: 100)
}}
net mlp {{
  x    = input(d.image)
  fc1  = dense(x, {units})
  h1   = relu(fc1)
  fc2  = dense(h1, 10)
  loss = softmax_loss(fc2, d.label)
}}
algorithm bp
updater sgd {{ lr: 0.1  momentum: 0.9 }}
"""


def _program(tmp_path, units=100, batch=64) -> pathlib.Path:
    path = tmp_path / "big.singa"
    path.write_text(MLP.format(ws=tmp_path / "ws", units=units, batch=batch))
    return path


@pytest.mark.parametrize("sample, tolerance", [
    ("mnist_mlp", 0.25), ("digits_cnn", 0.25), ("rbm1", 0.25), ("autoencoder_scratch", 0.25),
    # the GRU lowering keeps packed weights and per-step histories the estimate approximates
    ("char_rnn_small", 0.5)])
def test_the_estimate_is_close_to_what_the_plan_allocates(sample, tolerance):
    program = singa_dsl.load(ROOT / "samples" / f"{sample}.singa")
    est = memory.estimate(program)
    exact = sum(b.nbytes for b in compile_plan(program).kernels.buffers)
    print(f"{sample}: estimate {est.total / 2**20:.2f} MiB, plan {exact / 2**20:.2f} MiB")
    assert 1 - tolerance <= est.total / exact <= 1 + tolerance


def test_check_prints_the_estimate(capsys):
    assert cli.main(["check", str(ROOT / "samples" / "mnist_mlp.singa")]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("memory per device (estimate)"))
    assert "params 38.8 MiB" in line and "train activations" in line and "total" in line
    assert "largest buffer 19.1 MiB (weight fc2.w)" in line


def test_a_tensor_no_kernel_can_index_is_a_located_check_error(tmp_path, capsys):
    path = _program(tmp_path, units=2_000_000_000)
    code = cli.main(["check", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{path}:8:10: error: layer 'fc1': its weight fc1.w has 128,000,000,000 values" in err
    assert "32-bit ints" in err and "Traceback" not in err


def _wide(tmp_path, layers=24, units=40_000) -> pathlib.Path:
    """A chain of dense layers each under the 32-bit index limit (40,000 x 40,000 weights),
    together far beyond any device: ~1.5e8 KiB of params alone."""
    chain = "\n".join(f"  h{i} = dense(h{i - 1}, {units})" for i in range(1, layers + 1))
    path = tmp_path / "wide.singa"
    path.write_text(f"""job wide {{ steps: 10  workspace: "{tmp_path / 'ws'}" }}
data d {{ train: digits(split: "train", batch: 4) }}
net mlp {{
  h0   = input(d.image)
{chain}
  fc   = dense(h{layers}, 10)
  loss = softmax_loss(fc, d.label)
}}
algorithm bp
updater sgd {{ lr: 0.1  momentum: 0.9 }}
""")
    return path


def test_a_net_larger_than_the_device_is_a_located_error_before_allocation(tmp_path, capsys):
    path = _wide(tmp_path)
    t0 = time.perf_counter()
    code = cli.main(["run", str(path), "--quiet"])
    err = capsys.readouterr().err
    print(err, f"{time.perf_counter() - t0:.2f} s")
    assert code == 2
    # params dominate: the error points at the net
    assert f"{path}:3:1: error: the job needs about" in err
    assert "GiB of global memory" in err and "hint: use fewer units or filters" in err
    assert "Traceback" not in err
    assert not (tmp_path / "ws").exists()                       # nothing ran
    assert time.perf_counter() - t0 < 20


def test_checking_a_huge_net_allocates_nothing_of_its_size(tmp_path):
    path = _wide(tmp_path)
    tracemalloc.start()
    program = singa_dsl.load(path)
    est = memory.estimate(program)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert est.total > 400 << 30 and peak < 64 << 20, peak


def test_a_buffer_over_the_max_allocation_names_its_layer(tmp_path):
    program = singa_dsl.load(_program(tmp_path, units=5000))
    # fc1.w and the train outputs (64 x 5000) take 1.2 MiB; the test outputs (100 x 5000) 1.9
    errors = memory.fit_errors(program, "small gpu", global_memory=1 << 30,
                               max_alloc=3 << 19)
    assert [(e.span.line, e.message.split(":")[0]) for e in errors] == \
        [(8, "layer 'fc1'"), (9, "layer 'h1'")]
    assert errors[0].message == "layer 'fc1': its output (test batch 100) needs 1.9 MiB in " \
        "one buffer, more than small gpu allocates at once (1.5 MiB)"
    assert errors[0].hint.startswith("use a smaller batch")


def test_activations_that_do_not_fit_point_at_the_batch(tmp_path):
    program = singa_dsl.load(_program(tmp_path, units=500, batch=1000))
    est = memory.estimate(program)
    errors = memory.fit_errors(program, "small gpu", global_memory=est.total // 2,
                               max_alloc=1 << 30)
    assert len(errors) == 1
    assert errors[0].span.line == 3        # train: digits(..., batch: 1000)
    assert "use a smaller batch" in errors[0].hint


def test_a_program_that_fits_gives_no_error(tmp_path):
    program = singa_dsl.load(_program(tmp_path))
    assert memory.fit_errors(program, "cpu", global_memory=1 << 30, max_alloc=1 << 28) == []
    memory.check_device_fit(program)       # the real device: a tiny net fits


def test_the_runtime_refuses_a_plan_before_allocating_it(tmp_path, monkeypatch):
    """The guard every Plan passes (also for callers that never saw the program)."""
    from singa_dsl.runtime import trainer as trainer_module
    from singa_dsl.runtime.device import Device

    class SmallDevice(Device):
        global_memory = 1 << 16

    def no_executor(*a, **k):
        raise AssertionError("allocated")
    monkeypatch.setattr(trainer_module.Executor, "from_plan", no_executor)
    plan = compile_plan(singa_dsl.load(_program(tmp_path)))
    device = SmallDevice(Device.open().cl_device)
    with pytest.raises(SingaConfigError, match=r"the plan's buffers need .* MiB, more than "
                                               r"the 0.1 MiB of "):
        trainer_module.Trainer(plan, device=device, quiet=True)
