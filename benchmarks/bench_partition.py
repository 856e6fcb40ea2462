"""Predicted against measured step time of a partitioned net (default samples/cifar_convnet.singa
with 2 and 4 workers per group), side by side.

    python benchmarks/bench_partition.py [--sample samples/cifar_convnet.singa]
        [--workers 2 4] [--steps 5] [--warmup 2] [--batch N]

Measured: the partitioned plan (``compiler/lower_partitioned.py``) trained on one OpenCL
device with every worker simulated in this process (what ``singac run --simulate`` runs);
the time of forward + backward + updates per step (batch upload excluded), median of
``--steps`` after ``--warmup``.  All workers' launches run one after another on the same
device, so the measured step is the *sum of all workers' compute* (plus the connection
layers' copies), never the parallel step: compare it with the model's **total compute**
(Σ over layers and workers of flops × (1 + backward_factor) / flops_per_s).  The model's
**parallel step** (what ``singac plan --explain`` prints: busiest worker per layer, plus
activation transfers and param sync) is printed beside it, and so is the measured
counterpart of its compute part: per layer the slowest copy's kernel time (OpenCL profiling
events), summed over layers — what the step's compute would take if every worker had a
device of its own like this one and the transfers were free.

Configurations: the unpartitioned plan (1 worker), the partitioned executor on 1 worker
(its own overhead), the sample as written (its annotations; skipped where they do not
split), and ``partition: auto``, for each worker count.  ``calibrated`` is the model's total
compute with flops_per_s fitted to the unpartitioned step measured here."""
from __future__ import annotations

import argparse
import os
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("POCL_CACHE_DIR", str(ROOT / ".pocl-cache"))


def load(path: pathlib.Path, batch: int | None, auto: bool):
    import singa_dsl
    text = path.read_text()
    if batch is not None:
        text = re.sub(r"(train:[^\n]*batch: )\d+", rf"\g<1>{batch}", text)
    if auto:
        text = re.sub(r"partition: \w+", "partition: auto", text)
        text = re.sub(r"\s*@(batch|feature|none)\b", "", text)
    return singa_dsl.parse(text, str(path))


def model(program, workers: int, device):
    """(parallel step s, its compute part s, total compute flops over all workers, dims)
    from the cost model, for the program's dimensions (auto resolved)."""
    from singa_dsl.compiler.cost import compute_flops, predict
    from singa_dsl.compiler.partition_dims import layers
    from singa_dsl.compiler.partition_explain import resolve
    g, _ = resolve(program, workers, device)
    p = predict(g, device)
    total = sum(sum(compute_flops(l, l.partition, workers, p.batch))
                for l in layers(g)) * (1 + device.backward_factor)
    dims = {l.name: l.partition for l in layers(g)}
    return p.step_s, sum(c.compute_s for c in p.layers), total, dims


def measured_parallel(by_tag: dict) -> tuple[float, float]:
    """(Σ over layers of the slowest copy's kernel time, connection layers' copy time), from
    per-step kernel time by launch tag (``conv1@0``: copy 0 of conv1; ``concate(...)@1``: a
    connection layer; ``update ...``: the updaters, left out)."""
    per_layer, conn = {}, 0.0
    for tag, sec in by_tag.items():
        if tag.startswith("update"):
            continue
        if tag.startswith(("concate(", "slice(", "split(", "bridge")):
            conn += sec
            continue
        layer = re.sub(r"@\d+$", "", tag)
        per_layer[layer] = max(per_layer.get(layer, 0.0), sec)
    return sum(per_layer.values()), conn


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sample", default=str(ROOT / "samples" / "cifar_convnet.singa"))
    ap.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, help="override the train batch")
    args = ap.parse_args(argv)

    from singa_dsl.compiler.cost import Device as CostDevice
    from singa_dsl.compiler.lower_partitioned import lower_partitioned
    from singa_dsl.errors import SingaError
    from singa_dsl.run import compile_plan
    from singa_dsl.runtime.device import Device
    from singa_dsl.runtime.simulate_cl import time_steps

    path = pathlib.Path(args.sample)
    dev, pdev = Device.open(), Device.open(profile=True)
    cost = CostDevice()
    as_written = load(path, args.batch, auto=False)
    print(f"{path.name}: batch {as_written.batch}; OpenCL device {dev.cl_device.name.strip()} "
          f"({dev.cl_device.max_compute_units} compute units), every worker on it in one "
          f"process; cost model {cost.flops_per_s / 1e9:g} GFLOP/s per worker, link "
          f"{cost.link_bytes_per_s / 1e9:g} GB/s")

    def measure(plan):
        t = time_steps(plan, steps=args.steps, warmup=args.warmup, device=dev)
        prof = time_steps(plan, steps=4, warmup=1, device=pdev, profile=True)
        par, conn = measured_parallel(prof.by_tag)
        print(f"  steps ms: {', '.join(f'{x * 1e3:.1f}' for x in t.steps)}")
        return t, par, conn, prof.by_worker

    rows = []
    t1, par, conn, _ = measure(compile_plan(as_written))
    step1, comp1, total1, _ = model(as_written, 1, cost)
    rows.append(("unpartitioned", 1, step1, comp1, total1, t1, par, "the plan of singac run"))
    calib = total1 / t1.median_s                # flop/s this device sustains, all workers
    configs = [("partitioned executor", 1, as_written)]
    for w in args.workers:
        configs += [("as written", w, as_written), ("auto", w, load(path, args.batch, True))]
    for label, w, program in configs:
        try:
            step, comp, total, dims = model(program, w, cost)
            plan = lower_partitioned(program, w).plan
        except SingaError as e:
            print(f"[{label}, {w} workers] cannot partition: {str(e).splitlines()[0]}")
            continue
        t, par, conn, by_worker = measure(plan)
        feat = sorted(n for n, d in dims.items() if d == "feature")
        none = sorted(n for n, d in dims.items() if d == "none")
        what = ("feature: " + ", ".join(feat) if feat else "all batch") + \
            ("; none: " + ", ".join(none) if none else "")
        what = "one copy of each layer" if w == 1 else what
        rows.append((label, w, step, comp, total, t, par, what))
        workers = ", ".join(f"w{k} {v * 1e3:.1f}" for k, v in sorted(by_worker.items())
                            if k != "other")
        print(f"  [{label}, {w} workers] kernel ms per worker: {workers}; connection copies "
              f"{conn * 1e3:.2f} ms")

    print()
    head = [("config", "", "", ""), ("w", "", "", ""),
            ("model:", "step", "(parallel)", "ms"), ("", "compute", "(parallel)", "ms"),
            ("", "compute", "(total)", "ms"), ("", "total,", "calibrated", "ms"),
            ("measured:", "step", "median", "ms"), ("", "step", "min", "ms"),
            ("", "compute", "(parallel)", "ms"), ("median /", "total", "compute", ""),
            ("dims", "", "", "")]
    widths = [22, 2, 10, 10, 9, 10, 9, 7, 10, 9, 0]
    for k in range(4):
        print(" ".join(f"{h[k]:<{n}}" if j in (0, 10) else f"{h[k]:>{n}}"
                       for j, (h, n) in enumerate(zip(head, widths))).rstrip())
    for label, w, step, comp, total, t, par, what in rows:
        total_s = total / cost.flops_per_s
        cells = [f"{step * 1e3:.1f}", f"{comp * 1e3:.1f}", f"{total_s * 1e3:.1f}",
                 f"{total / calib * 1e3:.1f}", f"{t.median_s * 1e3:.1f}",
                 f"{t.min_s * 1e3:.1f}", f"{par * 1e3:.1f}", f"{t.median_s / total_s:.2f}"]
        print(f"{label:<22} {w:>2} " + " ".join(f"{c:>{n}}" for c, n in zip(cells, widths[2:]))
              + f" {what}")
    print(f"\ncalibrated: the unpartitioned step measured here sustains {calib / 1e9:.1f} "
          f"GFLOP/s (the model assumes {cost.flops_per_s / 1e9:g}).  'total' and 'measured "
          "step' are sums over all workers (one device runs them all); 'parallel' is the "
          "busiest worker per layer, summed over layers (measured: each tag's least kernel "
          "time over 4 profiled steps)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
