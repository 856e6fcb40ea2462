"""GEMM autotuning: every kernel the tuner may choose computes the GEMM (against numpy
float64), the tuner never picks a kernel that miscomputes, choices reach the lowered plan,
and the on-disk cache survives garbage."""
import json

import numpy as np
import pytest

import singa_dsl
from singa_dsl.compiler.gemm import GemmTile, gemm_launch
from singa_dsl.compiler import gemm_tuning
from singa_dsl.compiler.gemm_tuning import (GemmChoice, GemmKey, candidates, default_choice,
                                            refinements, tuned)
from singa_dsl.run import compile_plan
from singa_dsl.runtime import autotune
from singa_dsl.runtime.autotune import TuneCache, Tuned
from singa_dsl.runtime.device import Device
from singa_dsl.runtime.trainer import Trainer

from test_gemm import assert_close, run_gemm


@pytest.fixture(scope="module")
def device():
    return Device.open()


@pytest.fixture(autouse=True)
def tune_small_gemms(monkeypatch):
    """The tests' nets are tiny: tune their GEMMs too, which the tuner normally leaves to
    the rules (MIN_TUNED_FLOP), so that they stay fast to measure."""
    monkeypatch.setattr(gemm_tuning, "MIN_TUNED_FLOP", 0)


def test_gemms_too_small_to_repay_tuning_are_not_tuned(monkeypatch):
    monkeypatch.setattr(gemm_tuning, "MIN_TUNED_FLOP", 1 << 24)
    program = singa_dsl.parse(MLP)
    with tuned({}) as scope:
        compile_plan(program)
    assert not scope.misses
    monkeypatch.setattr(gemm_tuning, "MIN_TUNED_FLOP", 0)
    with tuned({}) as scope:
        compile_plan(program)
    assert len(scope.misses) == 5


KEYS = [GemmKey("nn", True, 37, 53, 70), GemmKey("nt", True, 29, 45, 70),
        GemmKey("tn", False, 45, 37, 66), GemmKey("tt", False, 21, 40, 33)]


@pytest.mark.parametrize("key", KEYS, ids=lambda k: k.text)
def test_every_candidate_computes_the_gemm(device, key):
    """What the tuner measures must be right before it may be fast: every first-round
    candidate (both vector widths) and the refinements around the first two."""
    first = candidates(key, (8, 16))
    choices = list(dict.fromkeys(first + [r for c in first[:2] for r in refinements(c, key)]))
    assert len(choices) > 8
    for c in choices:
        got, want = run_gemm(device, key.m, key.n, key.k, key.trans_a, key.trans_b,
                             bias=key.bias, pack=c.pack, tile=c.tile, k_chunk=c.k_chunk,
                             beta=0.5, pad=(3, 1, 2), offsets=(5, 7, 3, 2))
        assert_close(got, want, key.k)


def test_refinements_cut_k_only_where_it_is_long():
    short = GemmKey("nn", False, 64, 64, 100)
    packed = GemmChoice(True, GemmTile(6, 16, 8))
    assert all(r.k_chunk == packed.k_chunk for r in refinements(packed, short))
    long = GemmKey("nn", False, 64, 64, 3000)
    assert {r.k_chunk for r in refinements(packed, long)} >= {256, 1024}


def test_the_tuner_picks_a_correct_kernel_and_reports_its_time(device):
    key = GemmKey("nt", True, 48, 96, 80)
    r = autotune.tune_key(device, key)
    assert r.key == key and r.seconds > 0 and r.default_seconds >= r.seconds * 0.97 - 1e-9
    got, want = run_gemm(device, key.m, key.n, key.k, False, True, bias=True,
                         pack=r.choice.pack, tile=r.choice.tile, k_chunk=r.choice.k_chunk)
    assert_close(got, want, key.k)


def test_a_miscomputing_kernel_is_never_chosen(device, monkeypatch):
    """Break every candidate but one (their results come back wrong): that one wins however
    slow it is."""
    key = GemmKey("nn", False, 40, 64, 50)
    keep = GemmChoice(False, GemmTile(3, 32, 8))
    real_error = autotune._Bench.error

    def error(self, choice):
        return real_error(self, choice) if choice == keep else 1.0

    monkeypatch.setattr(autotune._Bench, "error", error)
    monkeypatch.setattr(autotune, "candidates", lambda k, w, cpu: [default_choice(k), keep])
    assert autotune.tune_key(device, key).choice == keep


def test_a_tuned_choice_reaches_the_plan_and_misses_are_recorded():
    key = GemmKey("nt", True, 8, 16, 64)       # the dense layer's forward below
    choice = GemmChoice(True, GemmTile(4, 24, 8, 16, 1), 256)
    program = singa_dsl.parse(MLP)
    default_programs = {p.name for p in compile_plan(program).kernels.programs}
    with tuned({key: choice}) as scope:
        plan = compile_plan(program)
    names = {p.name for p in plan.kernels.programs}
    tuned_forward = "sgemm_nt_packed_bias_tanh_4x24v8"   # h's tanh is in its epilogue
    assert tuned_forward in names - default_programs
    assert key in scope.used
    assert GemmKey("tn", False, 16, 64, 8) in scope.misses     # dW, not in the table
    launch = next(l for l in dict(plan.kernels.launch_lists)["train"]
                  if l.program == tuned_forward and "bias" in l.kernel)
    assert launch.local_size == (16, 1)


MLP = """
job t { steps: 6 workspace: "unused" }
data d { train: synthetic(shape: [64], classes: 4, size: 64, batch: 8) }
net n {
  x = input(d.image)
  h = tanh(dense(x, 16))
  y = dense(h, 4)
  loss = softmax_loss(y, d.label)
}
algorithm bp
updater sgd { lr: 0.1 }
"""


def test_training_on_tuned_kernels_follows_the_default_kernels(device, tmp_path):
    """A tuned plan trains to the same losses as the default one (different tiles only
    reorder float32 sums)."""
    program = singa_dsl.parse(MLP)
    cache = TuneCache(tmp_path / "tune.json")
    plan = autotune.lower_tuned(lambda: compile_plan(program), device, tune=True, cache=cache)
    assert cache.table(autotune.device_key(device))       # something was measured
    losses = []
    for p in (compile_plan(program), plan):
        trainer = Trainer(p, device=device, workspace=str(tmp_path / "ws"), quiet=True)
        trainer.init_params()
        trainer.run_init()
        losses.append([trainer.train_step(s)[0] for s in range(6)])
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5, atol=1e-6)


def test_a_second_lowering_measures_nothing(device, tmp_path, monkeypatch):
    program = singa_dsl.parse(MLP)
    cache = TuneCache(tmp_path / "tune.json")
    autotune.lower_tuned(lambda: compile_plan(program), device, tune=True, cache=cache)

    def refuse(*a, **k):
        raise AssertionError("measured again")

    monkeypatch.setattr(autotune, "tune_keys", refuse)
    autotune.lower_tuned(lambda: compile_plan(program), device, tune=True, cache=cache)
    assert not autotune.gemm_keys(lambda: compile_plan(program), device, cache=cache)


def test_tuning_off_measures_nothing_but_reads_the_cache(device, tmp_path, monkeypatch):
    program = singa_dsl.parse(MLP)
    cache = TuneCache(tmp_path / "tune.json")
    monkeypatch.setattr(autotune, "tune_keys", lambda *a, **k: pytest.fail("measured"))
    monkeypatch.setenv("SINGA_TUNE", "0")
    key = GemmKey("nt", True, 8, 16, 64)
    cache.record(autotune.device_key(device),
                 [Tuned(key, GemmChoice(False, GemmTile(2, 4, 8)), 1e-5, 2e-5, 3)])
    plan = autotune.lower_tuned(lambda: compile_plan(program), device, cache=cache)
    assert "sgemm_nt_bias_tanh_2x4v8" in {p.name for p in plan.kernels.programs}


def _result(key, choice):
    return Tuned(key, choice, 1e-4, 2e-4, 5)


def test_the_cache_round_trips_and_keeps_devices_apart(tmp_path):
    cache = TuneCache(tmp_path / "sub" / "tune.json")
    a = _result(GemmKey("nn", True, 64, 2500, 784), GemmChoice(True, GemmTile(4, 24, 8), 256))
    b = _result(GemmKey("nt", False, 3, 5, 7), GemmChoice(False, GemmTile(2, 4, 8, pf=0)))
    cache.record("dev A", [a])
    cache.record("dev B", [b])
    assert TuneCache(cache.path).table("dev A") == {a.key: a.choice}
    assert TuneCache(cache.path).table("dev B") == {b.key: b.choice}
    assert TuneCache(cache.path).table("dev C") == {}


def test_a_garbage_cache_is_reported_and_rebuilt(tmp_path):
    path = tmp_path / "tune.json"
    path.write_bytes(b"\x00\xffnot json{{")
    said = []
    cache = TuneCache(path, warn=said.append)
    assert cache.table("dev") == {}
    assert "unreadable" in said[0] and str(path) in said[0]
    r = _result(GemmKey("tn", False, 10, 20, 30), GemmChoice(False, GemmTile(6, 16, 8)))
    cache.record("dev", [r])
    assert json.loads(path.read_text())["version"] == autotune.CACHE_VERSION
    assert TuneCache(path).table("dev") == {r.key: r.choice}


def test_invalid_entries_are_skipped_and_valid_ones_kept(tmp_path):
    path = tmp_path / "tune.json"
    good = {"pack": True, "k_chunk": 512, "tile": [6, 16, 8, 4, 4, 0]}
    path.write_text(json.dumps({"version": 1, "devices": {"dev": {
        "nn 64x64x64": good,
        "nn 64x64x65": {**good, "tile": [6, 12, 8, 4, 4, 0]},     # packed nr not × vw
        "nn 64x64x66": {**good, "tile": [6, 16, 8, 4, 4]},        # too short
        "nn 64x64x67": {**good, "k_chunk": "512; rm -rf /"},
        "nn 64x64x68": {**good, "tile": [6, 16, 3, 4, 4, 0]},     # no such vector width
        "xx 1x2x3": good,
        "nn 0x4x4": good,
        "nn 64x64x69": "not a dict"}}}))
    said = []
    table = TuneCache(path, warn=said.append).table("dev")
    assert table == {GemmKey("nn", False, 64, 64, 64): GemmChoice.from_json(good)}
    assert "7 entries" in said[0]


def test_the_cli_tunes_once_then_reads_the_cache(tmp_path, monkeypatch, capsys):
    from singa_dsl.cli import main
    monkeypatch.setenv("SINGA_TUNE_CACHE", str(tmp_path / "tune.json"))
    prog = tmp_path / "m.singa"
    prog.write_text(MLP)
    assert main(["tune", str(prog)]) == 0
    err = capsys.readouterr().err
    assert "tuning 5 GEMM shapes" in err and "tuned 5 shapes in" in err
    assert main(["tune", str(prog)]) == 0
    assert "nothing to tune" in capsys.readouterr().err
    assert main(["tune", str(prog), "--force", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


MODEL_PARALLEL = """
job t { steps: 2 }
data d { train: synthetic(shape: [64], classes: 4, size: 64, batch: 8) }
net n {
  x = input(d.image)
  h = tanh(dense(x, 16))
  y = dense(h, 40) @feature
  loss = softmax_loss(y, d.label)
}
algorithm bp
updater sgd { lr: 0.1 }
cluster { workers_per_group: 2 }
"""


def test_a_model_parallel_job_tunes_each_workers_partition(device, tmp_path, monkeypatch):
    """What the ranks compile is what gets tuned: a feature-split layer's GEMMs have each
    worker's 20 of 40 outputs over the whole batch of 8; the batch-split ones 4 rows.  (The
    unpartitioned plan's shapes are tuned too: a worker plan is lowered from it.)"""
    from singa_dsl.run import tune_program
    monkeypatch.setenv("SINGA_TUNE_CACHE", str(tmp_path / "tune.json"))
    asked = []
    monkeypatch.setattr(autotune, "tune_and_record",
                        lambda dev, keys, **kw: asked.append(set(keys)) or [])
    tune_program(singa_dsl.parse(MODEL_PARALLEL), device=device, quiet=True)
    keys = asked[0]
    assert GemmKey("nt", True, 8, 20, 16) in keys           # y's forward, one worker's half
    assert GemmKey("nt", True, 4, 16, 64) in keys           # the dense before it, 4 rows


def _measured(cache):
    """Keys of the entries that were measured (the rest hold the rules' choice)."""
    devices = json.loads(cache.path.read_text())["devices"]
    return {GemmKey.parse(t) for d in devices.values() for t, e in d.items()
            if e["us"] is not None}


def test_a_run_measures_within_its_budget_biggest_shapes_first(device, tmp_path, monkeypatch):
    """SINGA_TUNE_SECONDS bounds what one run spends: here nothing but the first shape (the
    biggest); the next runs measure the next ones, until the cache holds them all."""
    program = singa_dsl.parse(MLP)
    cache = TuneCache(tmp_path / "tune.json")
    monkeypatch.setenv("SINGA_TUNE_SECONDS", "1e-9")
    monkeypatch.setattr(autotune, "WORK_SHARE", 1.0)
    lower = lambda: compile_plan(program)        # noqa: E731
    all_keys = autotune.gemm_keys(lower, device, cache=cache)
    said = []
    autotune.lower_tuned(lower, device, tune=True, cache=cache, say=said.append)
    assert _measured(cache) == {min(all_keys, key=lambda k: (-k.flop, k))}   # ties: by name
    assert "4 smaller ones left for the next runs" in said[-1]
    for _ in range(4):
        autotune.lower_tuned(lower, device, tune=True, cache=cache)
    assert _measured(cache) == all_keys


def test_only_the_shapes_doing_most_of_the_work_are_measured(device, tmp_path, monkeypatch):
    """The small rest is recorded with the rules' kernel, so no later run measures it."""
    program = singa_dsl.parse(MLP)
    cache = TuneCache(tmp_path / "tune.json")
    lower = lambda: compile_plan(program)        # noqa: E731
    all_keys = autotune.gemm_keys(lower, device, cache=cache)
    autotune.lower_tuned(lower, device, tune=True, cache=cache)
    measured = _measured(cache)
    work = {k: k.flop for k in all_keys}
    assert sum(work[k] for k in measured) >= autotune.WORK_SHARE * sum(work.values())
    assert measured < all_keys                        # the 8x4x16-class GEMMs are not
    assert min(work[k] for k in measured) >= max(work[k] for k in all_keys - measured)
    table = cache.table(autotune.device_key(device))
    assert set(table) == all_keys
    assert all(table[k] == default_choice(k) for k in all_keys - measured)
    assert not autotune.gemm_keys(lower, device, cache=cache)


def test_when_no_kernel_computes_the_gemm_the_rules_choice_stays(device, monkeypatch):
    monkeypatch.setattr(autotune._Bench, "error", lambda self, choice: float("nan"))
    key = GemmKey("tn", False, 24, 40, 30)
    r = autotune.tune_key(device, key)
    assert r.choice == default_choice(key) and r.seconds == float("inf")


def test_singac_run_measures_only_when_asked(tmp_path, monkeypatch):
    from singa_dsl.cli import main
    monkeypatch.delenv("SINGA_TUNE", raising=False)          # the default: off
    monkeypatch.setenv("SINGA_TUNE_CACHE", str(tmp_path / "tune.json"))
    prog = tmp_path / "m.singa"
    prog.write_text(MLP)
    args = ["run", str(prog), "--steps", "2", "--quiet", "--workspace", str(tmp_path / "ws")]
    assert main(args) == 0
    assert not (tmp_path / "tune.json").exists()
    assert main(args + ["--tune"]) == 0
    assert _measured(TuneCache(tmp_path / "tune.json"))
