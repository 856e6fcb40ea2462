"""Start-up cost: seconds from `singac run FILE` to its first training step, cold and warm,
measured from outside with real subprocesses.

    python benchmarks/bench_startup.py                       # the default samples
    python benchmarks/bench_startup.py samples/char_rnn.singa --repeat 3

For each program the script writes a copy without the job's test/validate schedules (so no
evaluation runs before step 0; data paths made absolute), then runs

    singac run COPY --steps 1 --quiet --workspace TMP

and watches TMP/metrics.jsonl: the first training record is written right after the first
training step returns (display fires at step 0).  Reported: that moment ("first step") and
the process's exit (which adds a checkpoint save and the interpreter's shutdown), both from
the moment the subprocess was started.

* cold: POCL_CACHE_DIR is a fresh empty folder, so PoCL compiles every program and every
  kernel's work-group function from source (this build keeps no compiled programs of its own
  on disk: PoCL's kernel cache is the program cache between processes; pass --clear DIR to
  empty further cache folders before each cold run);
* warm: the same run again with the cache that the cold run filled.

"cold" is a first run on a new machine (`singac run`: GEMM kernels from the tuning cache,
empty here, so the defaults).  "cold, tuned" runs `singac run --tune` with an empty tuning
cache (SINGA_TUNE_CACHE), so the difference is what the one-time autotune of the program's
GEMM shapes costs (runtime/autotune.py).  Warm runs `singac run` again, both caches filled.

The baselines are the interpreter alone (`python -c pass`) and the interpreter plus the
imports `singac run` needs (numpy, pyopencl, singa_dsl's compiler and runtime).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_FILES = ("samples/mnist_mlp.singa", "samples/cifar_convnet.singa", "samples/char_rnn.singa")
SINGAC = [sys.executable, "-m", "singa_dsl.cli"]
IMPORTS = ("import numpy, pyopencl, singa_dsl.cli, singa_dsl.run, "
           "singa_dsl.compiler.lower, singa_dsl.runtime.trainer")


def startup_copy(src: pathlib.Path, folder: pathlib.Path) -> pathlib.Path:
    """The program without the job's `test:`/`validate:` schedules, with every quoted path
    that exists beside the original made absolute."""
    text = src.read_text(encoding="utf-8")
    text = re.sub(r"^\s*(test|validate)\s*:\s*every\(.*$\n?", "", text, flags=re.M)

    def absolute(m: re.Match) -> str:
        p = (src.parent / m.group(1))
        return f'"{p.resolve()}"' if p.exists() else m.group(0)
    text = re.sub(r'"([^"\n]+)"', absolute, text)
    out = folder / src.name
    out.write_text(text, encoding="utf-8")
    return out


def run_to_first_step(program: pathlib.Path, env: dict, timeout: float = 600.0):
    """(seconds to the first training record, seconds to exit) of one `singac run`."""
    with tempfile.TemporaryDirectory(prefix="singa_startup_ws_") as ws:
        metrics = pathlib.Path(ws) / "metrics.jsonl"
        cmd = SINGAC + ["run", str(program), "--steps", "1", "--quiet", "--workspace", ws]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        first = None
        while True:
            if first is None and metrics.exists():
                for line in metrics.read_text().splitlines():
                    try:
                        if json.loads(line).get("phase") == "train":
                            first = time.perf_counter() - t0
                            break
                    except ValueError:
                        pass          # a line being written
            if proc.poll() is not None:
                break
            if time.perf_counter() - t0 > timeout:
                proc.kill()
                raise RuntimeError(f"{program.name}: no exit after {timeout:.0f} s")
            time.sleep(0.002)
        end = time.perf_counter() - t0
        err = proc.stderr.read()
        if proc.returncode != 0:
            raise RuntimeError(f"{program.name}: singac exited {proc.returncode}:\n{err}")
        if first is None:
            raise RuntimeError(f"{program.name}: no training record in {metrics}")
        return first, end


def timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=ROOT, check=True)
    return time.perf_counter() - t0


def load_average() -> str:
    try:
        return " ".join(pathlib.Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", default=list(DEFAULT_FILES), metavar="FILE")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure (median reported)")
    ap.add_argument("--threads", type=int, help="POCL_MAX_PTHREAD_COUNT for the runs")
    ap.add_argument("--clear", action="append", default=[], metavar="DIR",
                    help="another cache folder to empty before each cold run")
    args = ap.parse_args()
    base = dict(os.environ)
    if args.threads:
        base.update(POCL_MAX_PTHREAD_COUNT=str(args.threads),
                    OPENBLAS_NUM_THREADS=str(args.threads))
    print(f"load average before: {load_average()}")
    py = statistics.median(timed([sys.executable, "-c", "pass"], base)
                           for _ in range(args.repeat))
    imp = statistics.median(timed([sys.executable, "-c", IMPORTS], base)
                            for _ in range(args.repeat))
    head = (f"{'program':<22} {'cold: first step':>17} {'exit':>7}   "
            f"{'cold, tuned':>13} {'exit':>7}   "
            f"{'warm: first step':>17} {'exit':>7}   (seconds, median of {args.repeat})")
    lines = [head, "-" * len(head)]
    with tempfile.TemporaryDirectory(prefix="singa_startup_") as tmp:
        tmp = pathlib.Path(tmp)
        for f in args.files:
            src = (ROOT / f) if not pathlib.Path(f).is_absolute() else pathlib.Path(f)
            program = startup_copy(src, tmp)
            cold, tuned, warm = [], [], []
            for r in range(args.repeat):
                for extra in args.clear:
                    shutil.rmtree(extra, ignore_errors=True)
                env = dict(base, POCL_CACHE_DIR=str(tmp / f"pocl-untuned-{src.stem}-{r}"),
                           SINGA_TUNE="0", SINGA_TUNE_CACHE=str(tmp / "none.json"))
                cold.append(run_to_first_step(program, env))
                for extra in args.clear:
                    shutil.rmtree(extra, ignore_errors=True)
                env = dict(base, POCL_CACHE_DIR=str(tmp / f"pocl-cache-{src.stem}-{r}"),
                           SINGA_TUNE="1",
                           SINGA_TUNE_CACHE=str(tmp / f"tune-{src.stem}-{r}.json"))
                tuned.append(run_to_first_step(program, env))
                warm.append(run_to_first_step(program, dict(env, SINGA_TUNE="0")))
            c1, c2, t1, t2, w1, w2 = (statistics.median(x[i] for x in runs)
                                      for runs in (cold, tuned, warm) for i in (0, 1))
            lines.append(f"{src.name:<22} {c1:17.2f} {c2:7.2f}   {t1:13.2f} {t2:7.2f}   "
                         f"{w1:17.2f} {w2:7.2f}")
    lines.append(f"baselines: `python -c pass` {py:.2f} s; python + the imports of "
                 f"`singac run` {imp:.2f} s")
    print("\n".join(lines))
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
