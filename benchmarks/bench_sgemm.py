"""sgemm GFLOP/s of singa_dsl's OpenCL GEMM against numpy's BLAS, measured in the same run.

    python benchmarks/bench_sgemm.py [--quick] [--reps 7]

Square sizes 256..2048 (NN) and the SINGA MLP's layer GEMMs (784-2500-2000-1500-1000-500-10,
batch 64 and 256; weights stored in×out): forward Y = X·W (NN), weight gradient
dW = Xᵀ·dY (TN) and input gradient dX = dY·Wᵀ (NT).  Warm-up runs are excluded; each
number is the median of --reps samples, a sample timing enough back-to-back calls (each
ours followed by finish()) to last about 30 ms, ours and then numpy's for each shape;
`ratio` is numpy's median time over ours, `best` the same for the fastest samples.  The VM
is shared and noisy: compare ratios, measured in one run, and mind the load average.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from singa_dsl.compiler.gemm import gemm_launch
from singa_dsl.runtime.device import Device
from singa_dsl.runtime.executor import Executor
from singa_dsl.runtime.plan_types import BufferDecl

MLP = (784, 2500, 2000, 1500, 1000, 500, 10)
SAMPLE_SECONDS = 0.03
BLAS_SPIN_SECONDS = 0.3     # longer than OpenBLAS's idle threads keep spinning


def cases(quick: bool):
    squares = (256, 1024) if quick else (256, 512, 1024, 2048)
    for n in squares:
        yield f"square {n}", n, n, n, False, False
    for batch in ((64,) if quick else (64, 256)):
        for fan_in, fan_out in zip(MLP, MLP[1:]):
            layer = f"b{batch} {fan_in}->{fan_out}"
            yield f"{layer} fwd", batch, fan_out, fan_in, False, False
            yield f"{layer} dW", fan_in, fan_out, batch, True, False
            yield f"{layer} dX", batch, fan_in, fan_out, False, True


def timed_pair(fn_a, fn_b, reps: int) -> tuple[list[float], list[float]]:
    """Seconds per call of two functions, `reps` samples each, one function's samples
    right after the other's; each sample batches enough calls to last about
    SAMPLE_SECONDS.  The first calls (builds, first touch) are not timed.  Not interleaved
    sample by sample: OpenBLAS's idle threads spin for ~0.1 s after each call and would
    take a core from PoCL, hence also the pause before the first function's samples."""
    time.sleep(BLAS_SPIN_SECONDS)
    out = []
    for fn in (fn_a, fn_b):
        n = _calls_per_sample(fn)
        samples = []
        for _ in range(reps):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            samples.append((time.perf_counter() - t0) / n)
        out.append(samples)
    return out[0], out[1]


def _calls_per_sample(fn) -> int:
    fn()
    t0 = time.perf_counter()
    fn()
    return max(1, int(SAMPLE_SECONDS / max(time.perf_counter() - t0, 1e-6)))


def bench_case(device, m, n, k, ta, tb, reps):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
    emit = gemm_launch(m=m, n=n, k=k, a="a", b="b", c="c", trans_a=ta, trans_b=tb)
    buffers = [BufferDecl("a", a.nbytes), BufferDecl("b", b.nbytes), BufferDecl("c", m * n * 4),
               *emit.buffers]
    ex = Executor(device, buffers, emit.programs, {"gemm": emit.launches})
    ex.write("a", a)
    ex.write("b", b)
    opa, opb = (a.T if ta else a), (b.T if tb else b)

    def ours():
        ex.run("gemm")
        ex.finish()

    ours()
    got = ex.read("c", (m, n))
    want = opa.astype(np.float64) @ opb
    err = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))
    t_ours, t_np = timed_pair(ours, lambda: opa @ opb, reps)
    return t_ours, t_np, err


def idle_fraction(seconds: float = 1.0) -> float:
    """Share of CPU time the whole machine spent idle over `seconds` (Linux /proc/stat):
    near 1.0 means no other process competes for the cores."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]
    try:
        total0, idle0 = snap()
        time.sleep(seconds)
        total1, idle1 = snap()
    except OSError:
        return float("nan")
    return (idle1 - idle0) / max(1, total1 - total0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer shapes")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--device", default=None, help="Device.open selector")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for both PoCL and numpy's BLAS (default: all cores)")
    args = ap.parse_args(argv)
    idle = idle_fraction()
    if args.threads:   # read by PoCL when the platform starts, i.e. in Device.open
        os.environ["POCL_MAX_PTHREAD_COUNT"] = str(args.threads)
        threadpool_limits(args.threads)
    device = Device.open(args.device)
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    print(f"device: {device.name} ({device.platform}), {device.compute_units} compute units; "
          f"numpy {np.__version__} with "
          + ", ".join(f"{i['internal_api']} {i['version']} ({i['num_threads']} threads)"
                      for i in blas))
    head = f"{'case':26s} {'M':>5s} {'N':>5s} {'K':>5s} {'op':>3s} " \
           f"{'ours GF/s':>10s} {'numpy GF/s':>11s} {'ratio':>6s} {'best':>6s} {'rel err':>8s}"
    print(head)
    print("-" * len(head))
    ratios = []
    for name, m, n, k, ta, tb in cases(args.quick):
        t_ours, t_np, err = bench_case(device, m, n, k, ta, tb, args.reps)
        flop = 2.0 * m * n * k
        med_ours, med_np = statistics.median(t_ours), statistics.median(t_np)
        ratio = med_np / med_ours
        ratios.append(ratio)
        op = ("T" if ta else "N") + ("T" if tb else "N")
        print(f"{name:26s} {m:5d} {n:5d} {k:5d} {op:>3s} {flop / med_ours / 1e9:10.1f} "
              f"{flop / med_np / 1e9:11.1f} {ratio:6.2f} {min(t_np) / min(t_ours):6.2f} "
              f"{err:8.1e}", flush=True)
    geo = float(np.exp(np.mean(np.log(ratios))))
    print(f"geometric mean ratio (ours / numpy, medians): {geo:.2f}; 'best' compares the "
          "fastest samples, which other processes' interference disturbs least")
    print(f"machine idle before the run: {idle:.0%} (other processes running during the "
          "run make both columns noisy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
