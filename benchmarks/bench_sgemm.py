"""sgemm GFLOP/s of singa_dsl's OpenCL GEMM against numpy's BLAS, measured in the same run.

    python benchmarks/bench_sgemm.py [--quick] [--reps 7]

Square sizes 256..2048 (NN) and the SINGA MLP's layer GEMMs (784-2500-2000-1500-1000-500-10,
batch 64 and 256; weights stored units×in as SINGA and the dense lowering keep them):
forward Y = X·Wᵀ + b (NT with the bias epilogue), input gradient dX = dY·W (NN) and weight
gradient dW = dYᵀ·X (TN).  `ours` is gemm.py's default kernel for the shape, `tuned` the
autotuner's choice ('=' where it is the default, or the shape is too small to tune; `ratio`
and `best` compare the tuned kernel) (runtime/autotune.py: measured now for shapes not in the tuning cache,
which the run fills; --no-tune skips the column).  Warm-up runs are excluded; each
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
from singa_dsl.compiler.gemm_tuning import GemmKey, tuned
from singa_dsl.runtime.device import Device
from singa_dsl.runtime.executor import Executor
from singa_dsl.runtime.plan_types import BufferDecl

MLP = (784, 2500, 2000, 1500, 1000, 500, 10)
SAMPLE_SECONDS = 0.03
BLAS_SPIN_SECONDS = 0.3     # longer than OpenBLAS's idle threads keep spinning


def cases(quick: bool):
    squares = (256, 1024) if quick else (256, 512, 1024, 2048)
    for n in squares:
        yield f"square {n}", n, n, n, False, False, False
    for batch in ((64,) if quick else (64, 256)):
        for fan_in, fan_out in zip(MLP, MLP[1:]):
            layer = f"b{batch} {fan_in}->{fan_out}"
            yield f"{layer} fwd", batch, fan_out, fan_in, False, True, True
            yield f"{layer} dX", batch, fan_in, fan_out, False, False, False
            yield f"{layer} dW", fan_out, fan_in, batch, True, False, False


def timed(fns, reps: int) -> list[list[float]]:
    """Seconds per call of each function, `reps` samples each, one function's samples right
    after the other's; each sample batches enough calls to last about SAMPLE_SECONDS.  The
    first calls (builds, first touch) are not timed.  Not interleaved sample by sample:
    OpenBLAS's idle threads spin for ~0.1 s after each call and would take a core from
    PoCL, hence also the pause before the first function's samples."""
    time.sleep(BLAS_SPIN_SECONDS)
    out = []
    for fn in fns:
        n = _calls_per_sample(fn)
        samples = []
        for _ in range(reps):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            samples.append((time.perf_counter() - t0) / n)
        out.append(samples)
    return out


def _calls_per_sample(fn) -> int:
    fn()
    t0 = time.perf_counter()
    fn()
    return max(1, int(SAMPLE_SECONDS / max(time.perf_counter() - t0, 1e-6)))


def bench_case(device, m, n, k, ta, tb, bias, reps, choice=None):
    """(seconds of ours with the default kernel, of ours with ``choice`` (None: not
    timed), of numpy; the worst relative error of ours against float64)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
    v = rng.standard_normal(n, dtype=np.float32)
    opa, opb = (a.T if ta else a), (b.T if tb else b)
    want = opa.astype(np.float64) @ opb + (v if bias else 0.0)
    variants = {"default": {}}
    if choice is not None:
        variants["tuned"] = {"pack": choice.pack, "tile": choice.tile, "k_chunk": choice.k_chunk,
                             "tiled": choice.tiled}
    fns, err = [], 0.0
    for how in variants.values():
        with tuned({}, cpu=device.is_cpu):   # the default: the device's family (CPU: rules)
            emit = gemm_launch(m=m, n=n, k=k, a="a", b="b", c="c", trans_a=ta, trans_b=tb,
                               bias="v" if bias else None, **how)
        buffers = [BufferDecl("a", a.nbytes), BufferDecl("b", b.nbytes),
                   BufferDecl("c", m * n * 4), BufferDecl("v", v.nbytes), *emit.buffers]
        ex = Executor(device, buffers, emit.programs, {"gemm": emit.launches})
        for name, value in (("a", a), ("b", b), ("v", v)):
            ex.write(name, value)

        def ours(ex=ex):
            ex.run("gemm")
            ex.finish()

        ours()
        got = ex.read("c", (m, n))
        err = max(err, float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30)))
        fns.append(ours)
    fns.append((lambda: np.add(opa @ opb, v)) if bias else (lambda: opa @ opb))
    times = timed(fns, reps)
    return times[0], (times[1] if choice is not None else None), times[-1], err


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
    ap.add_argument("--no-tune", dest="tune", action="store_false",
                    help="only gemm.py's default kernels (no tuned column)")
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
    choices = {}
    if args.tune:      # the autotuner's choices: cached, or measured now and cached
        from singa_dsl.compiler.gemm_tuning import lookup
        from singa_dsl.runtime.autotune import TuneCache, device_key, tune_and_record
        keys = {GemmKey(("t" if ta else "n") + ("t" if tb else "n"), bias, m, n, k)
                for _, m, n, k, ta, tb, bias in cases(args.quick)}
        table = TuneCache().table(device_key(device))
        missing = keys - set(table)
        if missing:
            table.update({r.key: r.choice for r in tune_and_record(
                device, missing, say=lambda t: print(t, flush=True))})
        from singa_dsl.compiler.gemm_tuning import default_choice
        cpu = device.is_cpu
        with tuned(table, cpu=cpu):  # the default's own choice is timed once, as the default
            choices = {key: c for key in keys
                       if (c := lookup(key)) is not None and c != default_choice(key, cpu)}
    head = f"{'case':26s} {'M':>5s} {'N':>5s} {'K':>5s} {'op':>5s} " \
           f"{'ours GF/s':>10s} {'tuned GF/s':>10s} {'numpy GF/s':>11s} {'ratio':>6s} " \
           f"{'best':>6s} {'rel err':>8s}   tuned kernel"
    print(head)
    print("-" * len(head))
    ratios = []
    for name, m, n, k, ta, tb, bias in cases(args.quick):
        op = ("t" if ta else "n") + ("t" if tb else "n")
        choice = choices.get(GemmKey(op, bias, m, n, k))
        t_default, t_tuned, t_np, err = bench_case(device, m, n, k, ta, tb, bias, args.reps,
                                                   choice)
        t_ours = t_tuned if t_tuned is not None else t_default
        flop = 2.0 * m * n * k
        med_ours, med_np = statistics.median(t_ours), statistics.median(t_np)
        ratio = med_np / med_ours
        ratios.append(ratio)
        tuned_gf = f"{flop / statistics.median(t_tuned) / 1e9:10.1f}" if t_tuned else \
            f"{'=':>10s}"
        print(f"{name:26s} {m:5d} {n:5d} {k:5d} {op.upper() + ('+b' if bias else ''):>5s} "
              f"{flop / statistics.median(t_default) / 1e9:10.1f} {tuned_gf} "
              f"{flop / med_np / 1e9:11.1f} {ratio:6.2f} {min(t_np) / min(t_ours):6.2f} "
              f"{err:8.1e}   {choice.label if choice else 'the default'}", flush=True)
    geo = float(np.exp(np.mean(np.log(ratios))))
    print(f"geometric mean ratio (numpy time / ours, medians, ours = tuned where tuned): "
          f"{geo:.2f}; 'best' compares the "
          "fastest samples, which other processes' interference disturbs least")
    print(f"machine idle before the run: {idle:.0%} (other processes running during the "
          "run make both columns noisy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
