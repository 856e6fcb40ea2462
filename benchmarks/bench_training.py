"""Training throughput: singa_dsl on OpenCL beside PyTorch CPU and a plain numpy step, measured
in one process with the same thread count, printed as a table with ratios.

    python benchmarks/bench_training.py               # 1 thread and all cores, each in a subprocess
    python benchmarks/bench_training.py --threads 1   # one configuration, in this process

Thread counts are fixed before numpy, PoCL or torch start (OPENBLAS_NUM_THREADS,
POCL_MAX_PTHREAD_COUNT, torch.set_num_threads), which is why each count runs in its own process.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

MLP_SIZES = (784, 2500, 2000, 1500, 1000, 500, 10)


def _mlp_program(batch: int) -> str:
    layers, prev = [], "x"
    for i, units in enumerate(MLP_SIZES[1:-1], 1):
        layers.append(f"  h{i} = stanh(dense({prev}, {units}, w: uniform(-0.05, 0.05), "
                      f"b: uniform(-0.05, 0.05)))")
        prev = f"h{i}"
    return f"""
job bench {{ steps: 1000000  workspace: "/tmp/singa_bench" }}
data d {{ train: synthetic(shape: [784], classes: 10, size: {batch * 8}, batch: {batch}) }}
net mlp {{
  x = input(d.image)
{chr(10).join(layers)}
  fc = dense({prev}, 10, w: uniform(-0.05, 0.05), b: uniform(-0.05, 0.05))
  loss = softmax_loss(fc, d.label)
}}
algorithm bp
updater sgd {{ lr: 0.01 }}
"""


def _time(step, warmup: int, seconds: float) -> float:
    """Steps per second: the median of short timed windows after warm-up."""
    for _ in range(warmup):
        step()
    rates = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(rates) < 3:
        t0, n = time.perf_counter(), 0
        while n < 3:
            step()
            n += 1
        rates.append(n / (time.perf_counter() - t0))
    rates.sort()
    return rates[len(rates) // 2]


def bench_singa(batch: int, seconds: float) -> float:
    import singa_dsl
    from singa_dsl.run import compile_plan
    from singa_dsl.runtime.trainer import Trainer
    trainer = Trainer(compile_plan(singa_dsl.parse(_mlp_program(batch))), quiet=True)
    trainer.init_params()
    counter = iter(range(10 ** 9))
    try:
        return _time(lambda: trainer.train_step(next(counter)), 3, seconds) * batch
    finally:
        for r in trainer.readers.values():
            r.close()


def bench_torch(batch: int, seconds: float, threads: int) -> float | None:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    mods = []
    for a, b in zip(MLP_SIZES[:-2], MLP_SIZES[1:-1]):
        mods += [torch.nn.Linear(a, b), torch.nn.Tanh()]
    model = torch.nn.Sequential(*mods, torch.nn.Linear(MLP_SIZES[-2], MLP_SIZES[-1]))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(batch, 784)
    y = torch.randint(0, 10, (batch,))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        loss.item()
    return _time(step, 3, seconds) * batch


def bench_numpy(batch: int, seconds: float) -> float:
    import numpy as np
    rng = np.random.default_rng(0)
    ws = [rng.uniform(-0.05, 0.05, (b, a)).astype(np.float32)
          for a, b in zip(MLP_SIZES[:-1], MLP_SIZES[1:])]
    bs = [np.zeros(b, np.float32) for b in MLP_SIZES[1:]]
    x = rng.standard_normal((batch, 784)).astype(np.float32)
    y = rng.integers(0, 10, batch)

    def step():
        acts = [x]
        for i, (w, b) in enumerate(zip(ws, bs)):
            z = acts[-1] @ w.T + b
            acts.append(np.tanh(z) if i < len(ws) - 1 else z)
        z = acts[-1]
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        d = p
        d[np.arange(batch), y] -= 1
        d /= batch
        for i in range(len(ws) - 1, -1, -1):
            gw, gb = d.T @ acts[i], d.sum(0)
            if i:
                d = (d @ ws[i]) * (1 - acts[i] ** 2)
            ws[i] -= 0.01 * gw
            bs[i] -= 0.01 * gb
    return _time(step, 2, seconds) * batch


def run_one(threads: int, seconds: float) -> list[dict]:
    rows = []
    for batch in (64, 256):
        singa = bench_singa(batch, seconds)
        torch_rate = bench_torch(batch, seconds, threads)
        numpy_rate = bench_numpy(batch, seconds)
        rows.append({"model": f"SINGA MLP 784-2500-2000-1500-1000-500-10, batch {batch}",
                     "threads": threads, "singa_dsl": singa, "torch": torch_rate,
                     "numpy": numpy_rate})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, help="run one thread count in this process")
    ap.add_argument("--seconds", type=float, default=6.0, help="timed seconds per measurement")
    ap.add_argument("--json", action="store_true", help="print rows as JSON (for the driver)")
    args = ap.parse_args()
    if args.threads:
        rows = run_one(args.threads, args.seconds)
        print(json.dumps(rows) if args.json else _table(rows))
        return
    rows = []
    for threads in sorted({1, os.cpu_count() or 1}):
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
                   MKL_NUM_THREADS=str(threads), POCL_MAX_PTHREAD_COUNT=str(threads))
        out = subprocess.run([sys.executable, __file__, "--threads", str(threads), "--json",
                              "--seconds", str(args.seconds)], env=env, check=True,
                             capture_output=True, text=True).stdout
        rows += json.loads(out.strip().splitlines()[-1])
    print(_table(rows))


def _table(rows: list[dict]) -> str:
    head = (f"{'model':<58} {'thr':>3} {'singa_dsl':>10} {'torch':>10} {'numpy':>10} "
            f"{'vs torch':>9} {'vs numpy':>9}   (samples/s)")
    lines = [head, "-" * len(head)]
    for r in rows:
        t = f"{r['torch']:10.0f}" if r["torch"] else f"{'-':>10}"
        vt = f"{r['singa_dsl'] / r['torch']:9.2f}" if r["torch"] else f"{'-':>9}"
        lines.append(f"{r['model']:<58} {r['threads']:>3} {r['singa_dsl']:10.0f} {t} "
                     f"{r['numpy']:10.0f} {vt} {r['singa_dsl'] / r['numpy']:9.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
