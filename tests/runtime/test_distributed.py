"""The distributed runtime end to end, on MPI (MPICH from pip), through `singac run` as a user
starts it: sync training equals one worker step for step, async frameworks learn, a dead
rank ends the job naming it, and --resume continues."""
from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import singa_dsl
from singa_dsl.runtime import checkpoint

pytest.importorskip("mpi4py")
SINGAC = [sys.executable, "-m", "singa_dsl.cli"]

MLP = """
job sync {{ steps: {steps}  display: every(1)  test: every({steps}, batches: 4)  seed: 5
           checkpoint: every({ckpt})  workspace: "ws" }}
data d {{
  train: digits(split: "train", batch: 60, shuffle: true, normalize: (mean: 8, std: 8))
  test:  digits(split: "test", batch: 90, normalize: (mean: 8, std: 8))
}}
net mlp {{
  x    = input(d.image)
  h1   = relu(dense(x, 48))
  fc2  = dense(h1, 10)
  loss = softmax_loss(fc2, d.label)
}}
algorithm bp
updater sgd {{ lr: 0.05  momentum: 0.9  weight_decay: 0.0005 }}
cluster {{ {cluster} }}
"""

CNN = """
job sync {{ steps: {steps}  display: every(1)  seed: 2  workspace: "ws"
           checkpoint: every({ckpt}) }}
data d {{
  train: digits(split: "train", batch: 30, shuffle: true, normalize: (mean: 8, std: 8))
}}
net cnn {{
  x     = input(d.image, shape: [1, 8, 8])
  c1    = conv(x, 8, kernel: 3, pad: 1)
  p1    = max_pool(relu(c1), kernel: 2, stride: 2)
  fc    = dense(p1, 10)
  loss  = softmax_loss(fc, d.label)
}}
algorithm bp
updater sgd {{ lr: 0.05  momentum: 0.9 }}
cluster {{ {cluster} }}
"""


def _write(tmp_path, text, name="job.singa"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _singac(args, cwd, timeout=240, **kwargs):
    env = {**os.environ, "POCL_MAX_PTHREAD_COUNT": "1"}
    return subprocess.run(SINGAC + [str(a) for a in args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env, **kwargs)


def _metrics(ws: pathlib.Path, phase="train", group=0):
    out = {}
    for line in (ws / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["phase"] == phase and r.get("group", 0) == group:
            out[r["step"]] = r
    return out


def _train_losses(tmp_path, template, cluster, name, steps=50):
    folder = tmp_path / name
    folder.mkdir()
    job = _write(folder, template.format(steps=steps, ckpt=steps, cluster=cluster))
    r = _singac(["run", job, "--quiet"], folder)
    assert r.returncode == 0, r.stderr + r.stdout
    m = _metrics(folder / "ws")
    return np.array([m[s]["loss"] for s in range(steps)]), folder / "ws"


@pytest.mark.slow
@pytest.mark.parametrize("template", [MLP, CNN], ids=["mlp", "cnn"])
def test_sync_workers_give_the_loss_of_one_worker_at_every_step(tmp_path, template):
    one, ws1 = _train_losses(tmp_path, template, "", "one")      # one process, no MPI
    two, _ = _train_losses(tmp_path, template, "workers_per_group: 2", "two")
    three, ws3 = _train_losses(tmp_path, template,
                               "workers_per_group: 3  servers_per_group: 2", "three")
    print(f"max |loss difference| over 50 steps: 2 workers {np.abs(two - one).max():.2e}, "
          f"3 workers + 2 servers {np.abs(three - one).max():.2e}")
    np.testing.assert_allclose(two, one, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(three, one, rtol=1e-4, atol=1e-5)
    assert one[-1] < one[0] * 0.7                     # it learned; the equality means something
    # the checkpoint of the distributed job holds the same logical params by name
    p1, _, _ = checkpoint.load(checkpoint.latest(ws1))
    p3, s3, meta = checkpoint.load(checkpoint.latest(ws3))
    assert sorted(p1) == sorted(p3) and meta["step"] == 50
    for name in p1:
        np.testing.assert_allclose(p3[name], p1[name], rtol=1e-3, atol=1e-5)
    assert any(k.endswith("/history") for k in s3)    # the servers' momentum came along


def _final_test_accuracy(ws):
    return _metrics(ws, "test")[max(_metrics(ws, "test"))]["accuracy"]


@pytest.mark.slow
def test_downpour_and_hogwild_learn_as_well_as_sync(tmp_path):
    """Same number of samples: sync trains 2S steps of one group; Downpour and Hogwild train
    S steps in each of two groups."""
    s = 150
    results, times = {}, {}
    for name, cluster, steps in (
            ("sync", "", 2 * s),
            ("downpour", "worker_groups: 2  servers_per_group: 2  separate_servers: true", s),
            ("hogwild", "framework: hogwild  worker_groups: 2  server_groups: 2  sync_every: 2",
             s)):
        folder = tmp_path / name
        folder.mkdir()
        job = _write(folder, MLP.format(steps=steps, ckpt=steps, cluster=cluster)
                     .replace("batches: 4", "batches: 4").replace("every(1)", "every(10)"))
        t0 = time.perf_counter()
        r = _singac(["run", job, "--quiet"], folder)
        times[name] = time.perf_counter() - t0
        assert r.returncode == 0, r.stderr + r.stdout
        results[name] = _final_test_accuracy(folder / "ws")
        if name != "sync":
            assert _metrics(folder / "ws", group=1), "group 1's records are in metrics.jsonl"
    print("test accuracy after 18,000 samples: " + ", ".join(
        f"{k} {v:.4f} ({times[k]:.1f} s wall)" for k, v in results.items()))
    assert results["sync"] > 0.9
    assert results["downpour"] >= results["sync"] - 0.01
    assert results["hogwild"] >= results["sync"] - 0.01


def _rank_files(tmp_root: pathlib.Path):
    roles = {}
    for f in tmp_root.glob("singa-run-*/rank-*.json"):
        try:
            d = json.loads(f.read_text())
        except ValueError:
            continue
        roles[d["role"]] = d["pid"]
    return roles


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["server 0 of server group 0", "worker 1 of worker group 0"])
def test_a_killed_rank_ends_the_job_naming_it_and_resume_continues(tmp_path, victim):
    job = _write(tmp_path, MLP.format(steps=400, ckpt=20,
                                      cluster="workers_per_group: 2  servers_per_group: 2")
                 .replace("every(1)", "every(10)"))
    runs = tmp_path / "tmp"
    runs.mkdir()
    env = {**os.environ, "TMPDIR": str(runs), "POCL_MAX_PTHREAD_COUNT": "1"}
    proc = subprocess.Popen(SINGAC + ["run", str(job), "--quiet"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "ws" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:        # wait for a checkpoint and some more steps
        if (tmp_path / "ws" / "checkpoints").exists() and metrics.exists() and \
                len(metrics.read_text().splitlines()) > 6:
            break
        time.sleep(0.1)
    pid = next(p for role, p in _rank_files(runs).items() if victim in role)
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    out, err = proc.communicate(timeout=60)
    ended = time.monotonic() - killed
    print(f"killed the {victim}: the job ended {ended:.2f} s later with exit {proc.returncode}")
    assert ended < 10
    assert proc.returncode == 5, err
    assert victim in err and "died" in err and "Traceback" not in err
    last = checkpoint.latest(tmp_path / "ws")
    assert last is not None
    r = _singac(["run", job, "--quiet", "--resume"], tmp_path)
    assert r.returncode == 0, r.stderr
    steps = _metrics(tmp_path / "ws")
    assert max(steps) == 399 and checkpoint.load(checkpoint.latest(tmp_path / "ws"))[2][
        "step"] == 400


@pytest.mark.slow
def test_max_restarts_finishes_a_job_whose_rank_died(tmp_path):
    job = _write(tmp_path, MLP.format(steps=300, ckpt=20, cluster="workers_per_group: 2")
                 .replace("every(1)", "every(10)"))
    runs = tmp_path / "tmp"
    runs.mkdir()
    env = {**os.environ, "TMPDIR": str(runs), "POCL_MAX_PTHREAD_COUNT": "1"}
    proc = subprocess.Popen(SINGAC + ["run", str(job), "--quiet", "--max-restarts", "2"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (tmp_path / "ws" / "checkpoints").exists():
        time.sleep(0.1)
    pid = next(p for role, p in _rank_files(runs).items() if "worker 1" in role)
    os.kill(pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert "restarting from the newest checkpoint (1 of 2)" in err
    assert checkpoint.load(checkpoint.latest(tmp_path / "ws"))[2]["step"] == 300


DIVERGES = """
job div { steps: 30  workspace: "ws" }
data d { train: digits(split: "train", batch: 20, normalize: (mean: 8, std: 8)) }
net ae {
  x    = input(d.image)
  fc   = dense(x, 64)
  loss = euclidean_loss(fc, x)
}
algorithm bp
updater sgd { lr: 100 }
cluster { workers_per_group: 2 }
"""


def test_a_numerical_error_in_a_rank_names_it_and_exits_6(tmp_path):
    r = _singac(["run", _write(tmp_path, DIVERGES), "--quiet"], tmp_path)
    assert r.returncode == 6, r.stderr
    assert "(worker 0 of worker group 0): error: the training loss became inf" in r.stderr
    assert "Traceback" not in r.stderr and "RuntimeWarning" not in r.stderr


def test_mpiexec_with_the_wrong_number_of_ranks_is_a_clear_error(tmp_path):
    from singa_dsl.runtime.launch import mpiexec_path
    job = _write(tmp_path, MLP.format(steps=5, ckpt=5, cluster="workers_per_group: 2"))
    r = subprocess.run([mpiexec_path(), "-n", "2", *SINGAC, "run", str(job), "--quiet"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "needs 3 ranks (2 workers, 1 servers), but mpiexec started 2" in r.stderr


def test_a_checkpoint_of_a_distributed_job_resumes_in_one_process(tmp_path):
    """Logical params by name: a 2-worker, 2-server job's checkpoint continues as a
    one-process job (a different cluster shape)."""
    job = _write(tmp_path, MLP.format(steps=20, ckpt=10,
                                      cluster="workers_per_group: 2  servers_per_group: 2"))
    r = _singac(["run", job, "--quiet"], tmp_path)
    assert r.returncode == 0, r.stderr
    one = _write(tmp_path, MLP.format(steps=30, ckpt=10, cluster=""), "one.singa")
    r = _singac(["run", one, "--quiet", "--resume"], tmp_path)
    assert r.returncode == 0, r.stderr
    m = _metrics(tmp_path / "ws")
    assert max(m) == 29 and 20 in m
    assert m[29]["loss"] < m[0]["loss"]
