"""One OpenCL device: selection, a single in-order queue, cached program builds, buffers.

Programs are cached in memory by sha256(source, options, device identity); across
processes PoCL's own on-disk kernel cache does the work, which is why sources and options
must be deterministic (they are its key).  A failed build saves the source to a .cl file
and raises KernelBuildError naming the op that emitted it.
"""
from __future__ import annotations

import warnings

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyopencl as cl

from singa_dsl.errors import KernelBuildError, SingaConfigError

LOG_LINES = 20          # build-log lines quoted in a KernelBuildError


@dataclass(frozen=True)
class BuildStats:
    hits: int
    misses: int


class Device:
    """A context and one in-order queue on one OpenCL device."""

    def __init__(self, device: cl.Device, *, profile: bool = False,
                 kernel_dir: str | os.PathLike | None = None):
        self.cl_device = device
        self.context = cl.Context([device])
        props = cl.command_queue_properties.PROFILING_ENABLE if profile else 0
        self.queue = cl.CommandQueue(self.context, device, properties=props)
        self.profiling = profile
        self._kernel_dir = Path(kernel_dir) if kernel_dir is not None else None
        self._programs: dict[str, cl.Program] = {}
        self._hits = 0
        self._misses = 0

    # ---- selection -------------------------------------------------------------------
    @classmethod
    def open(cls, selector: str | None = None, *, profile: bool = False,
             kernel_dir: str | os.PathLike | None = None) -> "Device":
        """Open a device: by default PoCL's CPU device (or what PYOPENCL_CTX names).

        `selector` is "P:D" (platform and device index), "P" (first device of platform P),
        or a case-insensitive substring of a platform or device name.
        """
        if selector is None:
            selector = os.environ.get("PYOPENCL_CTX") or None
        return cls(select_device(selector), profile=profile, kernel_dir=kernel_dir)

    @property
    def name(self) -> str:
        return self.cl_device.name.strip()

    @property
    def platform(self) -> str:
        return self.cl_device.platform.name.strip()

    @property
    def is_cpu(self) -> bool:
        return bool(self.cl_device.type & cl.device_type.CPU)

    @property
    def compute_units(self) -> int:
        return int(self.cl_device.max_compute_units)

    @property
    def max_work_group_size(self) -> int:
        return int(self.cl_device.max_work_group_size)

    @property
    def global_memory(self) -> int:
        """Bytes of global memory (CL_DEVICE_GLOBAL_MEM_SIZE)."""
        return int(self.cl_device.global_mem_size)

    @property
    def max_alloc(self) -> int:
        """Bytes one buffer may have (CL_DEVICE_MAX_MEM_ALLOC_SIZE)."""
        return int(self.cl_device.max_mem_alloc_size)

    def fit_problem(self, sizes: dict[str, int]) -> str | None:
        """Why buffers of these sizes (name -> bytes) cannot all be allocated here, checked
        before any is (None: they fit).  The compiler's located check (compiler/memory.py)
        runs first where the program is at hand; this one guards every Plan."""
        too_big = sorted(((n, b) for n, b in sizes.items() if b > self.max_alloc),
                         key=lambda nb: -nb[1])
        if too_big:
            names = ", ".join(f"{n} ({_gib(b)})" for n, b in too_big[:3])
            return (f"buffer {names} is larger than {self.name} allocates at once "
                    f"({_gib(self.max_alloc)})")
        total = sum(sizes.values())
        if total > self.global_memory:
            top = ", ".join(f"{n} {_gib(b)}" for n, b in
                            sorted(sizes.items(), key=lambda nb: -nb[1])[:3])
            return (f"the plan's buffers need {_gib(total)}, more than the "
                    f"{_gib(self.global_memory)} of {self.name} (largest: {top})")
        return None

    @property
    def identity(self) -> str:
        """What makes a compiled binary valid: platform, device and driver versions."""
        d = self.cl_device
        return f"{self.platform}|{self.name}|{d.version}|{d.driver_version}"

    def __repr__(self) -> str:
        return f"Device({self.name!r} on {self.platform!r}, {self.compute_units} CUs)"

    # ---- programs --------------------------------------------------------------------
    @property
    def build_stats(self) -> BuildStats:
        return BuildStats(self._hits, self._misses)

    def build(self, source: str, options: tuple[str, ...] = (), origin: str = "") -> cl.Program:
        """Build (or fetch from the in-memory cache) a program for this device."""
        # Device-class macro for kernels (e.g. CPU-only prefetch hints); part of the cache key.
        options = tuple(options) + (("-DSINGA_CPU_DEVICE",) if self.is_cpu else ())
        key = program_key(source, options, self.identity)
        prog = self._programs.get(key)
        if prog is not None:
            self._hits += 1
            return prog
        self._misses += 1
        try:
            with warnings.catch_warnings():
                # PoCL prints vectorizer remarks as "compiler output"; a failure still raises.
                warnings.simplefilter("ignore", cl.CompilerWarning)
                prog = cl.Program(self.context, source).build(options=list(options))
        except cl.RuntimeError as exc:   # pyopencl's build failure carries the log in str()
            raise self._build_error(source, options, origin, key, str(exc)) from None
        self._programs[key] = prog
        return prog

    def _build_error(self, source, options, origin, key, log) -> KernelBuildError:
        directory = self._kernel_dir or Path(tempfile.mkdtemp(prefix="singa_kernels_"))
        directory.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", origin or "program").strip("_")[:60] or "program"
        path = directory / f"{stem}-{key[:12]}.cl"
        path.write_text(source)
        head = "\n".join("    " + l for l in _log_lines(log)[:LOG_LINES])
        where = origin or "an unnamed program"
        return KernelBuildError(
            f"OpenCL build failed for {where} on {self.name}; source saved to {path}\n"
            f"  options: {' '.join(options) or '(none)'}\n  build log (first lines):\n{head}",
            hint="this is a bug in the generated kernel unless the source was written by hand")

    # ---- buffers ---------------------------------------------------------------------
    def alloc(self, nbytes: int) -> cl.Buffer:
        # A zero-size buffer is an OpenCL error; keep one element so empty tensors still work.
        return cl.Buffer(self.context, cl.mem_flags.READ_WRITE, size=max(int(nbytes), 4))

    def upload(self, buf: cl.Buffer, array: np.ndarray, *, wait: bool = True) -> None:
        array = np.ascontiguousarray(array)
        cl.enqueue_copy(self.queue, buf, array, is_blocking=wait)

    def download(self, buf: cl.Buffer, array: np.ndarray) -> np.ndarray:
        """Copy into `array` (C-contiguous, the right size) after all queued work is done."""
        cl.enqueue_copy(self.queue, array, buf, is_blocking=True)
        return array

    def finish(self) -> None:
        self.queue.finish()


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**27 else f"{nbytes / 2**20:.1f} MiB"


def _log_lines(log: str) -> list[str]:
    """The build log without blank lines and pyopencl's repeated 'clBuildProgram failed'."""
    return [l for l in log.splitlines()
            if l.strip() and not l.startswith("clBuildProgram failed")]


def program_key(source: str, options: tuple[str, ...], identity: str) -> str:
    h = hashlib.sha256()
    for part in (source, "\0".join(options), identity):
        h.update(part.encode())
        h.update(b"\x01")
    return h.hexdigest()


def list_devices() -> list[tuple[int, int, cl.Device]]:
    """Every (platform index, device index, device) visible to OpenCL."""
    try:
        platforms = cl.get_platforms()
    except cl.Error:   # no ICD installed at all
        return []
    out = []
    for pi, p in enumerate(platforms):
        try:
            devices = p.get_devices()
        except cl.Error:
            devices = []
        out.extend((pi, di, d) for di, d in enumerate(devices))
    return out


def select_device(selector: str | None) -> cl.Device:
    devices = list_devices()
    if not devices:
        raise SingaConfigError("no OpenCL device found",
                               hint="install pocl-binary-distribution for a CPU device")
    if selector is None or selector.strip() == "":
        return _default_device(devices)
    found = _match(devices, selector.strip())
    if found is None:
        listing = "\n".join(f"    {pi}:{di}  {d.name.strip()}  (platform {d.platform.name.strip()})"
                            for pi, di, d in devices)
        raise SingaConfigError(f"no OpenCL device matches {selector!r}; available devices:\n"
                               f"{listing}",
                               hint="give 'platform:device' indices or part of a name")
    return found


def _default_device(devices) -> cl.Device:
    def rank(entry):
        _, _, d = entry
        pocl = "portable computing language" in d.platform.name.lower() or \
            "pocl" in d.platform.name.lower()
        cpu = bool(d.type & cl.device_type.CPU)
        return (not (pocl and cpu), not cpu)
    return sorted(devices, key=rank)[0][2]


def _match(devices, selector: str) -> cl.Device | None:
    m = re.fullmatch(r"(\d+)(?::(\d*))?", selector)
    if m:
        pi, di = int(m.group(1)), int(m.group(2) or 0)
        return next((d for p, i, d in devices if p == pi and i == di), None)
    s = selector.lower()
    for _, _, d in devices:
        if s in d.name.lower() or s in d.platform.name.lower():
            return d
    return None
