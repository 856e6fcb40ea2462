"""Throughput of the distributed runtime: the same job and global batch trained by one worker
(one process, no MPI) and by 2 sync workers with one OpenCL thread each (MPI ranks), as a
user runs them (`singac run`), side by side in one run of this script.

    python benchmarks/bench_distributed.py [--sample samples/mnist_mlp.singa] [--steps 60]

Prints samples/s per configuration (train display records after the first, so start-up and
kernel builds are left out), the speed-up and efficiency against the one-thread worker, and
where a distributed step's time goes (the driver's compute / push / wait split)."""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]

CONFIGS = (
    ("1 worker, 1 thread (in process)", "worker_groups: 1  workers_per_group: 1", 1),
    ("1 worker, 2 threads (in process)", "worker_groups: 1  workers_per_group: 1", 2),
    ("2 workers x 1 thread, 1 server (MPI)", "worker_groups: 1  workers_per_group: 2", 1),
    ("2 workers x 1 thread, 2 servers (MPI)",
     "worker_groups: 1  workers_per_group: 2  servers_per_group: 2", 1),
    ("2 workers x 1 thread, ring allreduce (MPI)",
     "worker_groups: 1  workers_per_group: 2  reduce: ring", 1),
)


def _with_cluster(text: str, cluster: str) -> str:
    text = re.sub(r"cluster\s*\{[^}]*\}", "", text)
    return text + f"\ncluster {{ {cluster} }}\n"


def run(sample: pathlib.Path, cluster: str, threads: int, steps: int, display: int, tmp):
    text = _with_cluster(sample.read_text(), cluster)
    text = re.sub(r"display:\s*every\([^)]*\)", f"display: every({display})", text)
    job = sample.parent / f".bench-{os.getpid()}.singa"    # beside it: relative data paths
    job.write_text(text)
    ws = pathlib.Path(tmp) / f"ws-{abs(hash((cluster, threads)))}"
    env = {**os.environ, "POCL_MAX_PTHREAD_COUNT": str(threads)}
    try:
        r = subprocess.run([sys.executable, "-m", "singa_dsl.cli", "run", str(job), "--steps",
                            str(steps), "--workspace", str(ws), "--threads", str(threads)],
                           capture_output=True, text=True, env=env, timeout=1800)
    finally:
        job.unlink()
    if r.returncode:
        raise SystemExit(f"{cluster}: exit {r.returncode}\n{r.stderr[-2000:]}")
    train = [json.loads(l) for l in (ws / "metrics.jsonl").read_text().splitlines()]
    rates = [t["samples_per_s"] for t in train
             if t["phase"] == "train" and t.get("group", 0) == 0 and t["step"] > 0
             and t.get("samples_per_s")]
    split = re.search(r"step time on .*?: (.*)", r.stderr)
    return sum(rates) / len(rates), (split.group(1) if split else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sample", default=str(ROOT / "samples" / "mnist_mlp.singa"))
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--display", type=int, default=10)
    args = ap.parse_args()
    sample = pathlib.Path(args.sample).resolve()
    print(f"{sample.name}, {args.steps} steps, load average before: {os.getloadavg()[0]:.2f}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, cluster, threads in CONFIGS:
            rate, split = run(sample, cluster, threads, args.steps, args.display, tmp)
            rows.append((name, rate, split))
    base = rows[0][1]
    print(f"{'configuration':40s} {'samples/s':>10s} {'vs 1x1':>7s}  where a step goes")
    for name, rate, split in rows:
        print(f"{name:40s} {rate:10.0f} {rate / base:7.2f}  {split}")
    for name, rate, _ in rows[2:]:
        print(f"efficiency of '{name}': {rate / (2 * base):.0%} of 2x the one-thread worker")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
