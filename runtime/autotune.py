"""GEMM autotuning: measure each shape's candidate kernels on the device, keep the fastest,
cache the choice by device and shape.

A plan is lowered under the cached table (``compiler/gemm_tuning.tuned``); the GEMM shapes
it lacks are measured here — every register block, packed and in place; then other work-group
shapes, prefetch and k slices around the two best; then the best few against the rules'
choice — and the plan is lowered again.  On a device that is not a CPU the candidates are
the tiled family's blocks (and the CPU rules' kernel), and the baseline that a choice must
beat, and that shapes not measured keep, is the tiled default.
Each candidate's result is checked against float64 numpy before it may win, so a kernel
that miscomputes on some device is never chosen.  Measuring is asked for (`singac tune`,
`singac run --tune`, SINGA_TUNE=1) and paid once per device and shape; every run reads the
cache.

The cache is a JSON file (``$SINGA_TUNE_CACHE``, else ``$XDG_CACHE_HOME/singa_dsl/
gemm-tuning.json``, else ``~/.cache/...``), keyed by the device's identity (platform, name,
driver) and its compute units — PoCL's thread count changes which tile wins.  It holds
only numbers that are validated on reading; an unreadable file is reported and rebuilt,
never trusted.
"""
from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from singa_dsl.compiler.gemm import gemm_launch, largest_buffers
from singa_dsl.compiler.gemm_tuning import (GemmChoice, GemmKey, candidates, default_choice,
                                            most_work, refinements, tuned)
from .plan_types import BufferDecl

CACHE_VERSION = 1
ENV_CACHE = "SINGA_TUNE_CACHE"
ENV_TUNE = "SINGA_TUNE"           # "1": measure missing shapes (cached choices always apply)
ENV_BUDGET = "SINGA_TUNE_SECONDS"  # how long one run may measure (unset: no limit)
WORK_SHARE = 0.9                  # a run measures the biggest shapes doing this much of
                                  # the plan's GEMM work; the rest keep the rules' kernels
MAX_REL_ERROR = 1e-4              # a candidate off by more than this from float64 is refused
SAMPLE_SECONDS = 0.004            # a timed sample repeats the GEMM at least this long
FINALISTS = 2                     # first-round winners whose neighbourhood is measured
FINAL_PASSES = 4
MIN_GAIN = 0.03                   # what a choice must gain over the rules' to replace them


@dataclass(frozen=True)
class Tuned:
    """One shape's outcome: the choice and the seconds per call it and the rules took."""
    key: GemmKey
    choice: GemmChoice
    seconds: float
    default_seconds: float
    candidates: int

    @property
    def speedup(self) -> float:
        ratio = self.default_seconds / self.seconds if self.seconds > 0 else 1.0
        return ratio if math.isfinite(ratio) else 1.0


def tuning_enabled(explicit: bool | None = None) -> bool:
    """``explicit`` when given (--tune / --no-tune), else SINGA_TUNE (default off).

    Off by default because measuring is not short on a CPU driver: each candidate is a
    kernel PoCL compiles (~0.3 s cold), ~40 s for SINGA's MLP, for 0-8% on this machine's
    steps (BENCHMARKS.md) — a user asks for it once (singac tune), every run then reads the
    cache."""
    if explicit is not None:
        return explicit
    return os.environ.get(ENV_TUNE, "0").strip().lower() in ("1", "yes", "on", "true")


def device_key(device) -> str:
    """What a tuned choice is valid for: platform, device and driver (as the program cache
    keys builds), and the compute units — PoCL's thread count."""
    d = getattr(device, "cl_device", device)      # a Device, or a pyopencl device
    return (f"{d.platform.name.strip()}|{d.name.strip()}|{d.version}|{d.driver_version}|"
            f"{int(d.max_compute_units)} CU")


def is_cpu(device) -> bool:
    """Whether ``device`` (a Device, or a pyopencl device) is a CPU: the CPU rules and
    candidates apply, else the tiled GEMM family (compiler/gemm_tuning.py)."""
    import pyopencl as cl
    d = getattr(device, "cl_device", device)
    return bool(d.type & cl.device_type.CPU)


def vector_widths(device) -> tuple[int, ...]:
    """Float vector widths worth trying: 8 always (the AVX2 shape), 16 where the device
    prefers it (AVX-512, PoCL reports 16)."""
    preferred = int(getattr(device.cl_device, "preferred_vector_width_float", 8) or 8)
    return (8, 16) if preferred >= 16 else (8,)


# ---- the cache ----------------------------------------------------------------------------

def default_cache_path() -> Path:
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "singa_dsl" / "gemm-tuning.json"


class TuneCache:
    """The choices measured so far, by device key and GEMM key, in one JSON file."""

    def __init__(self, path: str | os.PathLike | None = None, warn=None):
        self.path = Path(path) if path is not None else default_cache_path()
        self._warn = warn or (lambda text: print(f"warning: {text}", file=sys.stderr))

    def _read(self) -> dict:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            self._warn(f"cannot read the GEMM tuning cache {self.path}: {exc.strerror}; "
                       "tuning as if it were empty")
            return {}
        try:
            data = json.loads(raw.decode("utf-8"))      # a UnicodeError is a ValueError
            if not isinstance(data, dict) or data.get("version") != CACHE_VERSION \
                    or not isinstance(data.get("devices"), dict):
                raise ValueError("not a version-1 tuning cache")
        except ValueError as exc:
            self._warn(f"the GEMM tuning cache {self.path} is unreadable ({exc}); it will be "
                       "rebuilt")
            return {}
        return data["devices"]

    def table(self, device: str) -> dict[GemmKey, GemmChoice]:
        """The valid entries for one device (an invalid entry is skipped, not fatal)."""
        entries = self._read().get(device, {})
        table, bad = {}, 0
        for text, entry in (entries.items() if isinstance(entries, dict) else ()):
            try:
                key, choice = GemmKey.parse(text), GemmChoice.from_json(entry)
                choice.check(key)
            except (ValueError, TypeError, KeyError, AttributeError):
                bad += 1
                continue
            table[key] = choice
        if bad:
            self._warn(f"{bad} entries of the GEMM tuning cache {self.path} are invalid and "
                       "were ignored")
        return table

    def record(self, device: str, results: Iterable[Tuned]) -> None:
        """Merge results into the file: read, update, write a temporary file, rename (a
        crash or a second process never leaves a half-written cache)."""
        devices = self._read()
        mine = devices.get(device) if isinstance(devices.get(device), dict) else {}
        for r in results:
            mine[r.key.text] = {**r.choice.to_json(), "us": _micro(r.seconds),
                                "default_us": _micro(r.default_seconds)}
        devices[device] = mine
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".gemm-tuning-")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"version": CACHE_VERSION, "devices": devices}, f, indent=1,
                          sort_keys=True)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _micro(seconds: float) -> float | None:
    """Microseconds for the cache file (None: not measured; JSON has no NaN)."""
    return round(seconds * 1e6, 1) if math.isfinite(seconds) else None


# ---- measuring ----------------------------------------------------------------------------

class _Operands:
    """One shape's random operands and their float64 product: the reference every
    candidate's result is checked against (made once per shape: the float64 GEMM of a big
    shape costs more than measuring a candidate)."""

    def __init__(self, key: GemmKey, seed: int = 0):
        rng = np.random.default_rng(seed)
        m, n, k = key.m, key.n, key.k
        self.key = key
        self.a = rng.standard_normal((k, m) if key.trans_a else (m, k), np.float32)
        self.b = rng.standard_normal((n, k) if key.trans_b else (k, n), np.float32)
        self.bias = rng.standard_normal(n, np.float32)
        opa = self.a.T if key.trans_a else self.a
        opb = self.b.T if key.trans_b else self.b
        self.want = opa.astype(np.float64) @ opb.astype(np.float64) + \
            (self.bias if key.bias else 0.0)
        self.scale = max(float(np.abs(self.want).max()), 1e-30)


class _Bench:
    """A round of candidates for one shape: their launch lists on one executor, sharing the
    operands' buffers (and one scratch buffer, the largest any candidate needs)."""

    def __init__(self, device, ops: _Operands, choices: list[GemmChoice]):
        from .executor import Executor
        key = self.key = ops.key
        self.ops = ops
        self._last: dict[GemmChoice, float] = {}
        emits = {c: gemm_launch(m=key.m, n=key.n, k=key.k, a="a", b="b", c="c",
                                trans_a=key.trans_a, trans_b=key.trans_b,
                                bias="bias" if key.bias else None, pack=c.pack, tile=c.tile,
                                k_chunk=c.k_chunk, tiled=c.tiled)
                 for c in choices}
        self.names = {c: f"c{i}" for i, c in enumerate(choices)}
        buffers = largest_buffers([BufferDecl("a", ops.a.nbytes), BufferDecl("b", ops.b.nbytes),
                                   BufferDecl("c", key.m * key.n * 4),
                                   BufferDecl("bias", ops.bias.nbytes),
                                   *(d for e in emits.values() for d in e.buffers)])
        programs = {p.name: p for e in emits.values() for p in e.programs}
        self.ex = Executor(device, buffers, list(programs.values()),
                           {self.names[c]: e.launches for c, e in emits.items()})
        for name in ("a", "b", "bias"):
            self.ex.write(name, getattr(ops, name))

    def error(self, choice: GemmChoice) -> float:
        """Relative max error of the choice's result (its first run: builds and JITs)."""
        self.ex.write("c", np.full((self.key.m, self.key.n), np.nan, np.float32))
        self.ex.run(self.names[choice])
        got = self.ex.read("c", (self.key.m, self.key.n)).astype(np.float64)
        err = np.abs(got - self.ops.want).max() / self.ops.scale
        return float(err) if np.isfinite(err) else math.inf

    def seconds(self, choice: GemmChoice) -> float:
        """Seconds per call over one sample: at least SAMPLE_SECONDS of back-to-back calls
        (enqueued without waiting, then one finish)."""
        name = self.names[choice]
        calls = max(1, min(64, int(SAMPLE_SECONDS / self._last.get(choice, SAMPLE_SECONDS))))
        t0 = time.perf_counter()
        for _ in range(calls):
            self.ex.run(name)
        self.ex.finish()
        took = (time.perf_counter() - t0) / calls
        self._last[choice] = took
        return took


def tune_key(device, key: GemmKey) -> Tuned:
    """Measure ``key``'s candidates; the fastest correct one wins if it beats the rules'
    choice by MIN_GAIN (a closer race is noise on a shared machine: keep the default)."""
    ops = _Operands(key)
    cpu = is_cpu(device)
    times = _measure(device, ops, candidates(key, vector_widths(device), cpu=cpu), passes=1)
    ranked = sorted(times, key=times.get)
    second = [c for f in ranked[:FINALISTS] for c in refinements(f, key) if c not in times]
    times.update(_measure(device, ops, second, passes=1))
    base = default_choice(key, cpu=cpu)
    finalists = list(dict.fromkeys([base, *sorted(times, key=times.get)[:FINALISTS + 1]]))
    final = _measure(device, ops, [c for c in finalists if c in times],
                     passes=FINAL_PASSES, checked=True)
    if not final:      # nothing computed the GEMM right: keep the rules' choice, unmeasured
        return Tuned(key, base, math.inf, math.inf, len(times))
    best = min(final, key=final.get)
    base_s = final.get(base, math.inf)
    if base in final and final[best] > base_s * (1 - MIN_GAIN):
        best = base
    return Tuned(key, best, final[best], base_s, len(times))


def _measure(device, ops: _Operands, choices, passes, checked=False) -> dict[GemmChoice, float]:
    """Fastest sample of each correct choice over ``passes`` interleaved passes (a burst of
    load from other processes then slows one sample of every choice, not all of one);
    ``checked``: their results were checked in an earlier round (one untimed run each)."""
    if not choices:
        return {}
    bench = _Bench(device, ops, choices)
    if checked:
        ok = list(choices)
        for c in ok:
            bench.ex.run(bench.names[c])
    else:
        ok = [c for c in choices if bench.error(c) <= MAX_REL_ERROR]
    out = {c: math.inf for c in ok}
    for _ in range(passes):
        for c in ok:
            out[c] = min(out[c], bench.seconds(c))
    return out


def tune_budget() -> float | None:
    """Seconds one run may spend measuring (SINGA_TUNE_SECONDS; unset or 0: no limit).
    Shapes go biggest first; the ones a limit leaves are measured by the next runs."""
    try:
        budget = float(os.environ.get(ENV_BUDGET, "0"))
    except ValueError:
        budget = 0.0
    return budget if budget > 0 else None


def tune_keys(device, keys: Iterable[GemmKey], say: Callable[[str], None] | None = None,
              budget: float | None = None) -> list[Tuned]:
    """Measure the shapes biggest first, until ``budget`` seconds are spent (None: all)."""
    keys = sorted(set(keys), key=lambda k: (-k.flop, k))
    out, t0 = [], time.perf_counter()
    for i, key in enumerate(keys, 1):
        if budget is not None and out and time.perf_counter() - t0 > budget:
            break
        r = tune_key(device, key)
        out.append(r)
        if say:
            say(f"  [{i}/{len(keys)}] {key.text:24s} {r.choice.label:28s} "
                f"{r.seconds * 1e3:8.3f} ms  ({r.speedup:.2f}x the default)")
    return out


def tune_and_record(device, keys, *, cache: TuneCache | None = None,
                    say: Callable[[str], None] | None = None,
                    budget: float | None = None) -> list[Tuned]:
    """Measure ``keys`` on ``device`` (for ``budget`` seconds at most: None, all of them)
    and add the winners to the cache."""
    cache = cache or TuneCache()
    if say:
        say(f"tuning {len(keys)} GEMM shapes for {device.name} "
            f"({device.compute_units} compute units), once: cached in {cache.path}")
    t0 = time.perf_counter()
    results = tune_keys(device, keys, say, budget)
    cache.record(device_key(device), results)
    if say:
        tuned_s = sum(r.seconds for r in results)
        default_s = sum(r.default_seconds for r in results)
        left = len(set(keys)) - len(results)
        say(f"tuned {len(results)} shapes in {time.perf_counter() - t0:.1f} s: one call of "
            f"each {tuned_s * 1e3:.3f} ms, {default_s / max(tuned_s, 1e-12):.2f}x the "
            f"default kernels' {default_s * 1e3:.3f} ms"
            + (f"; {left} smaller ones left for the next runs (SINGA_TUNE_SECONDS)"
               if left else ""))
    return results


def gemm_keys(lower: Callable[[], object], device, *, cached: bool = True,
              cache: TuneCache | None = None) -> set[GemmKey]:
    """The tunable GEMM shapes ``lower()`` uses — only those the cache lacks when
    ``cached``."""
    table = (cache or TuneCache()).table(device_key(device)) if cached else {}
    with tuned(table, cpu=is_cpu(device)) as scope:
        lower()
    return set(scope.misses) | (set() if cached else set(scope.used))


def lower_tuned(lower: Callable[[], object], device, *, tune: bool | None = None,
                cache: TuneCache | None = None, say: Callable[[str], None] | None = None):
    """``lower()`` under the device's cached GEMM choices; shapes missing from the cache are
    measured first (unless tuning is off) and the plan lowered again with them."""
    cache = cache or TuneCache()
    table, cpu = cache.table(device_key(device)), is_cpu(device)
    with tuned(table, cpu=cpu) as scope:
        plan = lower()
    if not scope.misses or not tuning_enabled(tune):
        return plan
    # Only the shapes doing most of the work repay a measurement; the small rest are
    # recorded with the device's default choice, so no later run measures them either.
    worth = most_work(scope.misses, scope.launches, WORK_SHARE)
    results = tune_and_record(device, worth, cache=cache, say=say, budget=tune_budget())
    cache.record(device_key(device), [Tuned(k, default_choice(k, cpu), math.nan, math.nan, 0)
                                      for k in scope.misses - set(worth)])
    table.update({r.key: r.choice for r in results})
    with tuned(table, cpu=cpu):
        return lower()


def lower_cached(lower: Callable[[], object], selector: str | None = None,
                 cache: TuneCache | None = None):
    """``lower()`` under the cached choices for the device ``selector`` names, measuring
    nothing (an MPI rank: its launcher tuned before starting it)."""
    from .device import select_device
    device = select_device(selector or os.environ.get("PYOPENCL_CTX") or None)
    table = (cache or TuneCache()).table(device_key(device))
    with tuned(table, cpu=is_cpu(device)):
        return lower()
