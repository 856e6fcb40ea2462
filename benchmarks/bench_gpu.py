"""singa_dsl on an OpenCL GPU beside PyTorch on CUDA, in one process: sgemm GFLOP/s and the
training rows of bench_training.py (the same programs and the same torch models).

    python benchmarks/bench_gpu.py                         # every row, first OpenCL GPU
    python benchmarks/bench_gpu.py --device 0:0 --models mlp64,conv --seconds 4
    python benchmarks/bench_gpu.py --write-md /tmp/gpu.md  # + a section for BENCHMARKS.md
    python benchmarks/bench_gpu.py --allow-cpu --seconds 0.5 --models mlp64,rbm
                                                           # check the script without a GPU

Rows (--models, default all): sgemm (square n×n×n for n in --sgemm-sizes, the device's default
kernel — a GPU's is gemm_tiled.py's local-memory family —, against torch.mm), then bench_training's mlp64, mlp256, conv, rbm and gru (see its
docstring: SINGA's MLP at batch 64 and 256, the CIFAR-10 convnet at batch 100, RBM 784-1000
CD-1 at batch 100 on MNIST from ../shared/data/mnist — skipped with the reason where it is
absent — and the char-GRU 512, unroll 50, batch 32).

singa_dsl builds each trainer as `singac run --tune` does (bench_training.singa_trainer:
singa_dsl.run.training_plan, tuned GEMMs and fused SGD) on the --device OpenCL device
(default: $PYOPENCL_CTX if set, else the first GPU; without one the script stops unless
--allow-cpu is given, which runs both sides on the CPU: PoCL and torch CPU).  GEMM shapes
missing from the tuning cache ($SINGA_TUNE_CACHE, else ~/.cache/singa_dsl/gemm-tuning.json)
are measured first, at most --tune-seconds per model (SINGA_TUNE_SECONDS; the shapes left
over are measured by the next runs); the set-up time, with the tuning in it, is printed
beside each row and is not part of the rates.

PyTorch runs on CUDA in fp32: TF32 off for matmuls and cuDNN
(torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False),
cudnn.benchmark left at its default.  Both sides are timed in interleaved rounds
(bench_training.measure): 3-step windows, each ended by waiting for the device
(torch.cuda.synchronize, the OpenCL queue's finish) before the clock is read; rates are the
windows' medians, `best` compares the fastest windows.  Torch missing or without CUDA: the
reason is printed and the torch column stays empty.

Runtime on a GPU machine, budgeted to stay under ~8 minutes (estimated from its parts; not
yet measured on a GPU): the timed part is 8 rows × 2 sides × --seconds (default 2 s: ~32 s)
plus warm-ups; tuning takes at most --tune-seconds (default 20 s) per model plus the one GEMM
shape being measured when the budget runs out (each shape builds ~20 candidate kernels):
~2–3 minutes for the five models on an empty tuning cache, nothing on a filled one; OpenCL
kernel builds, torch and CUDA start-up ~1 minute: about 4–5 minutes in all.  Lower
--tune-seconds or --seconds where device time is shorter; point SINGA_TUNE_CACHE at a file
that is kept to tune only once.  On this repository's 2-core VM, `--allow-cpu --seconds 0.3`
with SINGA_TUNE_SECONDS=5 (tuning cache partly filled by a first run) took about 2 minutes.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import pathlib
import platform
import shlex
import sys
import time
import traceback

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench_training as bt  # noqa: E402

DEFAULT_SECONDS = 2.0
DEFAULT_TUNE_SECONDS = 20.0
SGEMM_SIZES_GPU = (1024, 2048, 4096)
SGEMM_SIZES_CPU = (256, 512, 1024)      # --allow-cpu on PoCL: 4096 would take minutes
GPU_PAUSE = 0.05                         # between visits on a GPU (no idle threads to wait out)
ROWS = ("sgemm", *bt.MODELS)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---- the devices ------------------------------------------------------------------------------

def open_opencl(selector: str | None, allow_cpu: bool):
    """The OpenCL device to run singa_dsl on: ``selector`` (as Device.open takes it), else
    $PYOPENCL_CTX, else the first GPU; a CPU device only with ``allow_cpu``."""
    import pyopencl as cl
    from singa_dsl.runtime.device import Device, list_devices
    devices = list_devices()
    kind = lambda d: "GPU" if d.type & cl.device_type.GPU else \
        "CPU" if d.type & cl.device_type.CPU else "other"  # noqa: E731
    listing = "\n".join(f"    {pi}:{di}  {d.name.strip()}  ({kind(d)}, platform "
                        f"{d.platform.name.strip()})" for pi, di, d in devices) or "    (none)"
    selector = selector or os.environ.get("PYOPENCL_CTX") or None
    if selector:
        device = Device.open(selector)
    else:
        gpus = [d for _, _, d in devices if d.type & cl.device_type.GPU]
        if gpus:
            device = Device(gpus[0])
        elif allow_cpu:
            device = Device.open(None)
        else:
            sys.exit("bench_gpu: no OpenCL GPU device found; OpenCL devices here:\n"
                     f"{listing}\nInstall the GPU's OpenCL driver (NVIDIA: its ICD), name a "
                     "device with --device, or pass --allow-cpu to check the script on PoCL's "
                     "CPU device and torch CPU.")
    if device.is_cpu and not allow_cpu:
        sys.exit(f"bench_gpu: {device.name} ({device.platform}) is a CPU device; pass "
                 "--allow-cpu to run on it (torch then runs on the CPU too).")
    return device


def open_torch(want_cuda: bool):
    """(torch or None, torch device or None, why the torch column is empty or None)."""
    try:
        import torch
    except ImportError as exc:
        return None, None, f"torch is not installed ({exc})"
    torch.manual_seed(0)
    if not want_cuda:
        return torch, "cpu", None
    if not torch.cuda.is_available():
        return torch, None, (f"torch {torch.__version__} has no CUDA device "
                             f"(torch.cuda.is_available() is False; CUDA build: "
                             f"{torch.version.cuda or 'none'})")
    torch.backends.cuda.matmul.allow_tf32 = False      # fp32 throughout, as singa_dsl
    torch.backends.cudnn.allow_tf32 = False
    return torch, "cuda", None


def header(device, torch, tdev, treason, args) -> dict:
    d, p = device.cl_device, device.cl_device.platform
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": platform.node(), "cpu": _cpu_model(), "cores": os.cpu_count(),
        "python": platform.python_version(), "numpy": np.__version__,
        "opencl_device": device.name, "opencl_vendor": d.vendor.strip(),
        "opencl_device_version": d.version.strip(), "driver": d.driver_version.strip(),
        "opencl_platform": f"{p.name.strip()} ({p.version.strip()})",
        "compute_units": device.compute_units,
        "global_memory_gib": round(device.global_memory / 2 ** 30, 1),
        "torch": getattr(torch, "__version__", None), "torch_device": tdev,
        "torch_note": treason, "gpu": None, "cuda": None, "cudnn": None, "tf32": None,
        "tune_cache": str(_tune_cache_path()),
        "tune_seconds": float(os.environ.get("SINGA_TUNE_SECONDS") or 0),
        "seconds": args.seconds, "command": _command(),
    }
    if tdev == "cuda":
        info.update(gpu=torch.cuda.get_device_name(0), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version(),
                    tf32=bool(torch.backends.cuda.matmul.allow_tf32
                              or torch.backends.cudnn.allow_tf32))
    elif tdev == "cpu":
        info["torch_threads"] = torch.get_num_threads()
    return info


def _cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _tune_cache_path():
    from singa_dsl.runtime.autotune import default_cache_path
    return default_cache_path()


def _command() -> str:
    return "python benchmarks/bench_gpu.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def header_text(h: dict) -> str:
    lines = [f"date: {h['date']}   machine: {h['machine']} ({h['cpu']}, {h['cores']} cores), "
             f"Python {h['python']}, numpy {h['numpy']}",
             f"OpenCL: {h['opencl_device']} ({h['opencl_vendor']}, {h['compute_units']} compute "
             f"units, {h['global_memory_gib']} GiB), driver {h['driver']}, "
             f"{h['opencl_device_version']}; platform {h['opencl_platform']}"]
    if h["torch_device"] == "cuda":
        lines.append(f"torch {h['torch']} on cuda: {h['gpu']} (CUDA {h['cuda']}, cuDNN "
                     f"{h['cudnn']}); fp32: TF32 {'ON' if h['tf32'] else 'off'} for matmul and "
                     "cuDNN")
    elif h["torch_device"] == "cpu":
        lines.append(f"torch {h['torch']} on the CPU ({h['torch_threads']} threads): an "
                     "--allow-cpu check of the script, not a benchmark (CPU numbers: "
                     "bench_training.py)")
    else:
        lines.append(f"torch: no column ({h['torch_note']})")
    budget = f"{h['tune_seconds']:g} s per model" if h["tune_seconds"] else "no limit"
    lines.append(f"GEMM tuning cache: {h['tune_cache']} (tuning budget {budget}); "
                 f"{h['seconds']:g} s timed per side and row")
    return "\n".join(lines)


# ---- the rows -----------------------------------------------------------------------------------

def _row(label, unit, rates, best, scale, setup=None, note=None) -> dict:
    row = {"model": label, "unit": unit}
    for name in ("singa_dsl", "torch"):
        row[name] = rates[name] * scale if name in rates else None
        row[f"{name}_best"] = best[name] * scale if name in best else None
    row["setup"] = setup
    row["note"] = note
    return row


def sgemm_rows(device, torch, tdev, treason, sizes, seconds, pause) -> list[dict]:
    from singa_dsl.compiler.gemm import gemm_launch
    from singa_dsl.compiler.gemm_tuning import tuned
    from singa_dsl.runtime.executor import Executor
    from singa_dsl.runtime.plan_types import BufferDecl
    rows = []
    for n in sizes:
        label = f"sgemm {n}x{n}x{n}, the device's default kernel"
        try:
            t0 = time.perf_counter()
            with tuned({}, cpu=device.is_cpu):    # a GPU's default: the tiled family
                emit = gemm_launch(m=n, n=n, k=n, a="a", b="b", c="c")
            bufs = [BufferDecl(x, n * n * 4) for x in "abc"] + list(emit.buffers)
            ex = Executor(device, bufs, emit.programs, {"g": emit.launches})
            rng = np.random.default_rng(0)
            a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
            ex.write("a", a)
            ex.write("b", b)
            ex.run("g")
            ex.finish()
            ref = a.astype(np.float64) @ b.astype(np.float64)
            err = float(np.abs(ex.read("c", (n, n)) - ref).max() / np.abs(ref).max())
            setup = {"plan_s": 0.0, "init_s": time.perf_counter() - t0, "tuned_shapes": 0}
            steps = {"singa_dsl": lambda: ex.run("g")}
            sync = {"singa_dsl": ex.finish}
            note = treason
            if torch is not None and tdev:
                ta, tb = torch.from_numpy(a).to(tdev), torch.from_numpy(b).to(tdev)
                steps["torch"] = lambda: torch.mm(ta, tb)
                if tdev == "cuda":
                    sync["torch"] = torch.cuda.synchronize
            rates, best = bt.measure(steps, seconds, pause=pause, sync=sync)
            rows.append(_row(f"{label} (max rel err {err:.1e})", "GFLOP", rates, best,
                             2 * n ** 3 / 1e9, setup, note))
        except Exception as exc:        # one failed row must not cost the others' device time
            traceback.print_exc()
            rows.append({"model": label, "unit": "GFLOP", "error": f"{type(exc).__name__}: {exc}"})
        finally:
            steps = sync = ex = ta = tb = None      # noqa: F841  (free the device memory)
            _free(torch, tdev)
        say(_row_text(rows[-1]))
    return rows


def model_row(key, device, torch, tdev, treason, seconds, pause) -> dict:
    label, unit, per_step, program, torch_maker, _ = bt.MODELS[key]
    reason = bt.unavailable(key)
    if reason:
        return {"model": label, "unit": unit, "skipped": reason}
    trainer = None
    try:
        builds = device.build_stats.misses
        setup = {}
        say(f"{key}: compiling (and tuning GEMM shapes missing from the cache) ...")
        trainer = bt.singa_trainer(program(), device=device, quiet=False, stats=setup)
        setup["kernels_built"] = device.build_stats.misses - builds
        steps = {"singa_dsl": bt.singa_step(trainer)}
        sync = {"singa_dsl": device.finish}
        note = treason
        if torch is not None and tdev:
            try:
                torch.manual_seed(0)
                step = torch_maker(torch, tdev)
                step()                  # a failure here is reported, the row goes on
                steps["torch"] = step
                if tdev == "cuda":
                    sync["torch"] = torch.cuda.synchronize
            except Exception as exc:
                traceback.print_exc()
                note = f"torch step failed: {type(exc).__name__}: {exc}"
        rates, best = bt.measure(steps, seconds, pause=pause, sync=sync)
        return _row(label, unit, rates, best, per_step, setup, note)
    except Exception as exc:
        traceback.print_exc()
        return {"model": label, "unit": unit, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        if trainer is not None:
            for r in trainer.readers.values():
                r.close()
        trainer = steps = None      # noqa: F841
        _free(torch, tdev)


def _free(torch, tdev):
    gc.collect()
    if tdev == "cuda":
        torch.cuda.empty_cache()


# ---- output -------------------------------------------------------------------------------------

def _ratio(a, b) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def _num(x) -> str:
    return "-" if x is None else f"{x:.0f}" if x >= 100 else f"{x:.1f}"


def _setup(s: dict | None) -> str:
    if not s:
        return ""
    if not s.get("plan_s"):
        return f"{s['init_s']:.1f} s build"
    n = s["tuned_shapes"]
    return (f"{s['plan_s']:.1f} s compile+tune ({n} shape{'' if n == 1 else 's'} tuned), "
            f"{s['init_s']:.1f} s kernels+init ({s.get('kernels_built', 0)} built)")


COLUMNS = ("row", "singa_dsl", "torch", "ratio", "best ratio", "unit/s", "set-up (not timed)")


def _cells(r: dict) -> list[str]:
    if r.get("skipped") or r.get("error"):
        what = f"skipped: {r['skipped']}" if r.get("skipped") else f"failed: {r['error']}"
        return [r["model"], "-", "-", "-", "-", r["unit"], what]
    setup = _setup(r.get("setup"))
    if r.get("note") and r.get("torch") is None:
        setup = (setup + "; " if setup else "") + "torch: " + r["note"]
    return [r["model"], _num(r["singa_dsl"]), _num(r["torch"]),
            _ratio(r["singa_dsl"], r["torch"]),
            _ratio(r.get("singa_dsl_best"), r.get("torch_best")), r["unit"], setup]


def _row_text(r: dict) -> str:
    return "  ".join(_cells(r))


def table(rows: list[dict]) -> str:
    cells = [list(COLUMNS)] + [_cells(r) for r in rows]
    width = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS) - 1)]
    right = {1, 2, 3, 4}

    def line(c):
        return "  ".join((c[i].rjust(width[i]) if i in right else c[i].ljust(width[i]))
                         for i in range(len(width))) + "  " + c[-1]
    head = line(cells[0])
    return "\n".join([head, "-" * len(head)] + [line(c) for c in cells[1:]])


def markdown(h: dict, rows: list[dict]) -> str:
    """A section for BENCHMARKS.md: a title naming the card and driver, the command and the
    conditions as one paragraph, the table."""
    import textwrap
    if h["torch_device"] == "cuda":
        torch_part = f"PyTorch {h['torch']} on {h['gpu']} (CUDA {h['cuda']}, cuDNN {h['cudnn']})"
    elif h["torch_device"] == "cpu":
        torch_part = f"PyTorch {h['torch']} on the CPU"
    else:
        torch_part = f"no PyTorch column ({h['torch_note']})"
    kind = "GPU" if h["torch_device"] != "cpu" else "OpenCL CPU (bench_gpu.py --allow-cpu check)"
    title = (f"## {kind}: {h['date'][:10]}, {h['opencl_device']} (driver {h['driver']}), "
             f"{h['opencl_platform']}, {torch_part}")
    budget = (f"at most {h['tune_seconds']:g} s per model" if h["tune_seconds"]
              else "with no time limit")
    fp = ("fp32: TF32 off for matmul and cuDNN" if h["torch_device"] == "cuda" else
          "fp32 (an --allow-cpu check of the script, not a benchmark)")
    paragraph = (
        f"`{h['command']}` at {h['date'][11:]} on {h['machine']} ({h['cpu']}, {h['cores']} "
        f"cores; Python {h['python']}, numpy {h['numpy']}); OpenCL device {h['opencl_device']} "
        f"({h['opencl_device_version']}, {h['compute_units']} compute units, "
        f"{h['global_memory_gib']} GiB); torch {fp}.  singa_dsl runs the plan `singac run "
        f"--tune` builds; GEMM shapes missing from the tuning cache were measured first, "
        f"{budget} (in the set-up column, not in the rates).  Both sides timed in "
        f"interleaved rounds, {h['seconds']:g} s each per row, 3-step windows ended by a "
        f"device wait; rates are medians, `best ratio` compares the fastest windows.  The "
        f"whole run took {h['wall_s']:.0f} s:")
    body = textwrap.fill(paragraph, 95, break_long_words=False, break_on_hyphens=False)
    return f"{title}\n\n{body}\n\n```\n{table(rows)}\n```\n"


# ---- main ---------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--device", help="OpenCL device: 'P:D' indices or part of a platform/device "
                    "name (default: $PYOPENCL_CTX, else the first GPU)")
    ap.add_argument("--allow-cpu", action="store_true",
                    help="run on a CPU OpenCL device (PoCL) and torch CPU when there is no GPU")
    ap.add_argument("--models", default="all",
                    help=f"comma-separated rows (default all: {','.join(ROWS)})")
    ap.add_argument("--seconds", type=float, default=DEFAULT_SECONDS,
                    help=f"timed seconds per side and row (default {DEFAULT_SECONDS:g})")
    ap.add_argument("--tune-seconds", type=float,
                    help="GEMM tuning budget per model, 0 for no limit (default: "
                         f"$SINGA_TUNE_SECONDS, else {DEFAULT_TUNE_SECONDS:g})")
    ap.add_argument("--sgemm-sizes", help="comma-separated n of the sgemm rows (default "
                    f"{','.join(map(str, SGEMM_SIZES_GPU))}; on a CPU device "
                    f"{','.join(map(str, SGEMM_SIZES_CPU))})")
    ap.add_argument("--json", action="store_true",
                    help="print the header and rows as one JSON object instead of the table")
    ap.add_argument("--write-md", metavar="FILE",
                    help="also write the table as a Markdown section for BENCHMARKS.md")
    args = ap.parse_args()
    keys = list(ROWS) if args.models.strip() == "all" else \
        [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [k for k in keys if k not in ROWS]
    if unknown:
        ap.error(f"unknown row(s) {', '.join(unknown)}; known: {', '.join(ROWS)}")
    if args.tune_seconds is not None:
        os.environ["SINGA_TUNE_SECONDS"] = f"{args.tune_seconds:g}"
    else:
        os.environ.setdefault("SINGA_TUNE_SECONDS", f"{DEFAULT_TUNE_SECONDS:g}")

    t_start = time.perf_counter()
    device = open_opencl(args.device, args.allow_cpu)
    torch, tdev, treason = open_torch(want_cuda=not device.is_cpu)
    if treason:
        say(f"torch column empty: {treason}")
    h = header(device, torch, tdev, treason, args)
    say(header_text(h))
    pause = bt.SPIN_SECONDS if device.is_cpu else GPU_PAUSE
    sizes = tuple(int(n) for n in args.sgemm_sizes.split(",")) if args.sgemm_sizes else \
        SGEMM_SIZES_CPU if device.is_cpu else SGEMM_SIZES_GPU

    rows = []
    for key in keys:
        if key == "sgemm":
            rows += sgemm_rows(device, torch, tdev, treason, sizes, args.seconds, pause)
        else:
            rows.append(model_row(key, device, torch, tdev, treason, args.seconds, pause))
            say(_row_text(rows[-1]))
    h["wall_s"] = round(time.perf_counter() - t_start, 1)

    if args.json:
        print(json.dumps({"header": h, "rows": rows}))
    else:
        print(header_text(h))
        print(table(rows))
        print(f"whole run: {h['wall_s']:.0f} s")
    if args.write_md:
        pathlib.Path(args.write_md).write_text(markdown(h, rows), encoding="utf-8")
        say(f"wrote {args.write_md}")


if __name__ == "__main__":
    main()
