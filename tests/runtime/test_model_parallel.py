"""Model parallelism across MPI ranks: each worker rank of a group runs only its partition of
each layer (compiler/lower_worker.py) and the bridges between the workers' copies are MPI
messages (runtime/model_parallel.py), forward and backward; the servers aggregate each param
unit from exactly the workers that compute it (runtime/cluster.ParamUnit).

In one process: every worker's plan run on its own executor, the exchanges handed over by
hand, equals the unpartitioned step (loss and param gradients); a worker's plan computes only
its slice; the servers take a feature slice from its one worker and refuse it from another.
On MPI (``singac run`` as a user starts it): the MLP and CNN samples with layers split on
features follow the one-process run step for step, the checkpoints hold the same params by
name, the driver's bridges carry what the cost model predicts, and a killed rank ends the
job naming it (exit 5), which then resumes."""
from __future__ import annotations

import os
import pathlib
import re
import time

import numpy as np
import pytest

import singa_dsl
from singa_dsl.compiler.cost import predict
from singa_dsl.compiler.lower_worker import lower_worker, model_parallel, param_units
from singa_dsl.compiler.partition_dims import assign_partition_dims, logical_graph
from singa_dsl.run import compile_plan
from singa_dsl.runtime import checkpoint
from singa_dsl.runtime.cluster import Layout, ParamLayout
from singa_dsl.runtime.device import Device
from singa_dsl.runtime.executor import Executor
from singa_dsl.runtime.messages import Frame, FrameError, Kind
from singa_dsl.runtime.server import ParamServer, initial_range
from singa_dsl.runtime.simulate_cl import run_step

SAMPLES = pathlib.Path(__file__).resolve().parents[2] / "samples"

SMALL = """
job j {{ steps: 5  seed: 3 }}
data d {{ train: digits(split: "train", batch: 12, normalize: (mean: 8, std: 8)) }}
net n {{
  x    = input(d.image)
  fc1  = dense(x, 24){fc1}
  h1   = tanh(fc1){h1}
  fc2  = dense(h1, 12){fc2}
  h2   = relu(fc2){h2}
  fc3  = dense(h2, 10){fc3}
  loss = softmax_loss(fc3, d.label)
}}
algorithm bp
updater sgd {{ lr: 0.1 }}
cluster {{ workers_per_group: {workers} }}
"""


def _small(workers=2, **dims):
    marks = {k: f" @{dims[k]}" if k in dims else "" for k in ("fc1", "h1", "fc2", "h2", "fc3")}
    return singa_dsl.parse(SMALL.format(workers=workers, **marks), "small.singa")


def _run_group(worker_plans, data, values, device):
    """Every worker's train list on its own executor, in one process: each runs up to its
    next exchange; a send posts the buffer's values, a receive waits (the worker yields)
    until its peer's piece is there.  Returns the executors."""
    executors = []
    for wp in worker_plans:
        ex = Executor.from_plan(device, wp.plan.kernels)
        for p in wp.plan.params:
            ex.write(p.buffer, np.asarray(values[p.key], np.float32).reshape(p.shape))
            ex.write(p.grad, np.zeros(p.shape, np.float32))
        for feed in wp.plan.phase("train").feeds:
            ex.write(feed.buffer, np.asarray(data[feed.field]).astype(feed.dtype))
        executors.append(ex)
    posted = {}

    def worker(k):
        wp, ex, start = worker_plans[k], executors[k], 0
        for x in wp.exchanges:
            ex.run("train", start, x.at)
            start = x.at
            if x.send:
                posted[x.ident, k, x.peer] = ex.read(x.buffer)[:x.count].copy()
            else:
                while (x.ident, x.peer, k) not in posted:
                    yield
                piece = posted.pop((x.ident, x.peer, k))
                assert piece.size == x.count
                ex.write(x.buffer, piece)
        ex.run("train", start)
        ex.finish()

    running = [worker(k) for k in range(len(worker_plans))]
    for _ in range(10_000):
        if not running:
            break
        for gen in list(running):
            try:
                next(gen)
            except StopIteration:
                running.remove(gen)
    assert not running and not posted, "the workers' exchanges do not match"
    return executors


def _group_step(program, workers, seed=0):
    """(unpartitioned StepResult, per-worker loss sum, per-param gradient summed over each
    unit's workers, the ModelParallel)."""
    mp, why = model_parallel(program, workers)
    assert mp is not None, why
    base = compile_plan(program)
    train = base.phase("train")
    rng = np.random.default_rng(seed)
    data = {f.field: (rng.integers(0, 10, f.shape) if f.field.endswith("label")
                      else rng.standard_normal(f.shape)).astype(f.dtype) for f in train.feeds}
    values = {p.key: (rng.standard_normal(p.shape) / np.sqrt(p.fan_in)).astype(np.float32)
              for p in base.params}
    device = Device.open()
    want = run_step(base, data, values, device=device)
    plans = [mp.worker_plan(k) for k in range(workers)]
    exs = _run_group(plans, data, values, device)
    loss = sum(float(ex.read(l.loss, (train.batch,)).astype(np.float64).mean())
               for ex in exs for l in train.losses)
    grads = {}
    for p in base.params:
        g = np.zeros(int(np.prod(p.shape)))
        for off, size, ws in mp.units[p.key]:
            for w in ws:
                g[off:off + size] += exs[w].read(p.grad).astype(np.float64)[off:off + size]
        grads[p.key] = g.reshape(p.shape)
    return want, loss, grads, mp


@pytest.mark.parametrize("workers,dims", [
    (2, {"fc2": "feature"}),
    (2, {"fc1": "feature", "h1": "feature", "fc2": "feature", "fc3": "none"}),
    (2, {"fc1": "none", "h2": "feature"}),
    (3, {"fc1": "feature", "h1": "none", "fc2": "feature"}),
], ids=["fc2-feature", "features-then-none", "none-then-feature", "3-workers"])
def test_the_workers_plans_with_their_exchanges_compute_the_unpartitioned_step(workers, dims):
    want, loss, grads, mp = _group_step(_small(workers, **dims), workers)
    assert any(d != "batch" for d in mp.dims.values())
    assert abs(loss - want.loss) <= 1e-5 * abs(want.loss)
    for key, g in grads.items():
        scale = np.abs(want.grads[key]).max()
        assert np.abs(g - want.grads[key]).max() <= 1e-5 * scale, key


def test_the_cnn_sample_split_as_written_computes_the_unpartitioned_step():
    text = (SAMPLES / "cifar_convnet.singa").read_text().replace("batch: 100", "batch: 8")
    want, loss, grads, mp = _group_step(singa_dsl.parse(text, "cifar.singa"), 2)
    assert mp.dims["ip1"] == "feature"
    assert abs(loss - want.loss) <= 1e-5 * abs(want.loss)
    for key, g in grads.items():
        assert np.abs(g - want.grads[key]).max() <= 1e-5 * np.abs(want.grads[key]).max(), key


def _mlp_text(features=("fc2", "fc3"), cluster="workers_per_group: 2"):
    text = (SAMPLES / "mnist_mlp.singa").read_text()
    text = re.sub(r"display:\s*every\([^)]*\)", "display: every(1)", text)
    text = re.sub(r"cluster\s*\{[^}]*\}", f"cluster {{ {cluster} }}" if cluster else "", text)
    for name in features:
        text, n = re.subn(rf"^(  {name} .*\))$", r"\1 @feature", text, count=1, flags=re.M)
        assert n == 1, name
    return text


def _sgemm_sizes(plan, tag):
    """The int arguments of the GEMM launches (not the packing ones) tagged ``tag``."""
    train = dict(plan.kernels.launch_lists)["train"]
    return {a[1] for l in train if l.tag == tag and l.kernel.startswith("sgemm")
            and "pack" not in l.kernel for a in l.args if a[0] == "int"}


def test_a_worker_computes_only_its_slice_of_a_feature_split_layer():
    program = singa_dsl.parse(_mlp_text(), "mlp.singa")
    whole = _sgemm_sizes(compile_plan(program), "fc2")
    assert 2000 in whole                       # the unsplit fc2: 2000 outputs
    for w in range(2):
        plan = lower_worker(program, w).plan
        tags = {l.tag for l in dict(plan.kernels.launch_lists)["train"]}
        assert f"fc2@{w}" in tags and not any(t.endswith(f"@{1 - w}") for t in tags)
        mine = _sgemm_sizes(plan, f"fc2@{w}")
        assert 1000 in mine and 2000 not in mine and 64 in mine    # F/2 outputs, all rows
        rows = _sgemm_sizes(plan, f"fc4@{w}")
        assert 32 in rows and 64 not in rows                       # a batch copy: its rows
    units = param_units(program, model_parallel(program, 2)[0].graph)
    assert units["fc2.w"] == ((0, 1000 * 2500, (0,)), (1000 * 2500, 1000 * 2500, (1,)))
    assert units["fc4.w"] == ((0, 1500 * 1000, (0, 1)),)


def test_what_cannot_run_model_parallel_says_why_and_splits_on_the_batch():
    assert model_parallel(_small(2), 2) == (None, None)          # every layer on the batch
    mp, why = model_parallel(_small(2, fc2="feature"), 2, ring=True)
    assert mp is None and "reduce: ring" in why and "fc2" in why


# ---- the servers: a feature slice comes from its one worker ----------------------------------
class _Wire:
    def __init__(self):
        self.sent = []

    def send(self, dst, frame):
        self.sent.append((dst, frame))

    def flush(self):
        pass


def test_a_server_applies_a_slice_from_its_one_worker_and_refuses_it_from_another():
    program = _small(2, fc2="feature")
    mp, _ = model_parallel(program, 2)
    plan = compile_plan(program)
    lay = Layout(1, 2, 1, 1)
    pl = ParamLayout.build(plan.params, lay, {u.param for u in plan.updates}, parts=mp.units)
    assert pl.model_parallel
    role = lay.role(lay.server_rank(0, 0))
    values, state = initial_range(plan, pl, role, {}, {})
    wire = _Wire()
    server = ParamServer(plan, lay, pl, role, wire, values, state)
    fc2w = next(i for i, p in enumerate(pl.params) if p.key == "fc2.w")
    slice1 = next(ui for ui, u in enumerate(pl.units) if u.param == fc2w and u.workers == (1,))
    u = pl.units[slice1]
    before = server.values[u.lo:u.hi].copy()
    grad = np.ones(u.hi - u.lo, np.float32)
    with pytest.raises(FrameError, match="only workers \\[1\\]"):
        server.handle(Frame(Kind.UPDATE, lay.worker_rank(0, 0), slice1, 0, 1.0, grad))
    server.handle(Frame(Kind.UPDATE, lay.worker_rank(0, 1), slice1, 0, 1.0, grad))
    replies = [(dst, f) for dst, f in wire.sent if f.kind is Kind.R_UPDATE]
    assert [dst for dst, _ in replies] == [lay.worker_rank(0, 1)]    # applied at once, to it
    np.testing.assert_allclose(server.values[u.lo:u.hi], before - 0.1, rtol=1e-6)
    shared = next(ui for ui, u in enumerate(pl.units) if u.workers == (0, 1))
    v = pl.units[shared]
    server.handle(Frame(Kind.UPDATE, lay.worker_rank(0, 0), shared, 0, 1.0,
                        np.ones(v.hi - v.lo, np.float32)))
    assert len([f for _, f in wire.sent if f.kind is Kind.R_UPDATE]) == 1   # waits for both


# ---- on MPI ----------------------------------------------------------------------------------
pytest.importorskip("mpi4py")
from test_distributed import _metrics, _singac, kill_midway  # noqa: E402

_BRIDGES = re.compile(r"bridges: sent (\d+) B, received (\d+) B per step")


def _train(folder: pathlib.Path, text: str, steps: int, quiet=True):
    folder.mkdir()
    (folder / "job.singa").write_text(text)
    r = _singac(["run", "job.singa", "--steps", steps, "--workspace", "ws"]
                + ["--quiet"] * quiet, folder, timeout=600)
    assert r.returncode == 0, r.stderr + r.stdout
    m = _metrics(folder / "ws")
    return np.array([m[s]["loss"] for s in range(steps)]), folder / "ws", r.stderr


def _cnn_text(cluster=True):
    text = (SAMPLES / "cifar_convnet.singa").read_text()
    text = re.sub(r"test:\s*every\([^)]*\)", "test: every(10, batches: 2)", text)
    text = re.sub(r"display:\s*every\([^)]*\)", "display: every(1)", text)
    return text if cluster else re.sub(r"cluster\s*\{[^}]*\}", "", text)


@pytest.mark.slow
@pytest.mark.parametrize("sample", ["mlp", "cnn"])
def test_model_parallel_job_follows_the_one_process_run(tmp_path, sample):
    """mnist_mlp with fc2 and fc3 split on features, cifar_convnet as written (ip1 split on
    features): 2 worker ranks and a server, against the one-process run of the same net."""
    steps = 20 if sample == "mlp" else 30
    one_text = _mlp_text(cluster="") if sample == "mlp" else _cnn_text(cluster=False)
    two_text = _mlp_text() if sample == "mlp" else _cnn_text()
    one, ws1, _ = _train(tmp_path / "one", one_text, steps)
    t0 = time.perf_counter()
    two, ws2, err = _train(tmp_path / "two", two_text, steps, quiet=False)
    wall = time.perf_counter() - t0
    diff = np.abs(two - one)
    print(f"{sample}: {steps} steps model-parallel on 2 workers ({wall:.1f} s wall): max |loss "
          f"difference| to one process {diff.max():.2e} "
          f"(relative {(diff / np.abs(one)).max():.2e})")
    assert "model parallel: each group's 2 workers" in err and "warning" not in err
    np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-6)
    t1, t2 = _metrics(ws1, "test"), _metrics(ws2, "test")
    assert sorted(t1) == sorted(t2)
    for s in t1:                                  # evaluation on the driver, params pulled
        assert abs(t1[s]["loss"] - t2[s]["loss"]) <= 1e-5 * abs(t1[s]["loss"])
    p1, _, _ = checkpoint.load(checkpoint.latest(ws1))
    p2, s2, meta = checkpoint.load(checkpoint.latest(ws2))
    assert sorted(p1) == sorted(p2) and meta["step"] == steps
    worst = max(float(np.abs(p2[k] - p1[k]).max()) for k in p1)
    print(f"{sample}: checkpoint params by name, max |difference| {worst:.2e}")
    # (test_distributed's tolerance: a conv bias sums its gradient over the batch and every
    # position, cancelling, and float32 sums it in another order over 2 workers — the
    # batch-split 2-worker job is as far from one process: 2e-6 on cifar's conv3.b)
    for name in p1:
        np.testing.assert_allclose(p2[name], p1[name], rtol=1e-3, atol=1e-5)
    # the driver's bridges moved what the cost model predicts (with 2 workers every bridge
    # has the driver at one end: what it sent and received is all that crossed)
    program = singa_dsl.parse(two_text, "two.singa")
    logical = assign_partition_dims(logical_graph(program))
    sent, received = map(int, _BRIDGES.search(err).groups())
    print(f"{sample}: driver's bridges {sent} B sent + {received} B received per step; "
          f"cost model {predict(logical).moved_bytes} B")
    assert sent + received == predict(logical).moved_bytes > 0


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["worker 1 of worker group 0", "server 0 of server group 0"])
def test_a_killed_rank_of_a_model_parallel_job_ends_it_naming_the_rank(tmp_path, victim):
    """The other worker waits on a bridge the dead one will never send: mpiexec ends the job,
    the launcher names the rank (exit 5) within seconds; --resume continues from the last
    checkpoint."""
    text = _cnn_text()
    text = re.sub(r"test:\s*every\([^)]*\)", "", text)
    text = text.replace('workspace: "runs/cifar_convnet"',
                        'workspace: "ws"  checkpoint: every(5)')
    job = tmp_path / "job.singa"
    job.write_text(text)
    ended, code, err = kill_midway(job, victim, args=("--steps", 400), records=8, wait=180)
    print(f"model parallel: killed the {victim}; the job ended {ended:.2f} s later with exit "
          f"{code}")
    assert ended < 10
    assert code == 5, err
    assert victim in err and "died" in err and "Traceback" not in err, err
    step = checkpoint.load(checkpoint.latest(tmp_path / "ws"))[2]["step"]
    r = _singac(["run", job, "--quiet", "--resume", "--steps", step + 5], tmp_path)
    assert r.returncode == 0, r.stderr
    assert max(_metrics(tmp_path / "ws")) == step + 4
    assert checkpoint.load(checkpoint.latest(tmp_path / "ws"))[2]["step"] == step + 5
