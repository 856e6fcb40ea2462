"""Runs a plain-data kernel plan on one Device.

Everything costly happens once, in the constructor: buffers are allocated, programs built
and one cl.Kernel made per launch with its arguments set.  `run(name)` then only enqueues
(`cl.enqueue_nd_range_kernel`, ~1.5 µs a launch on PoCL) and never waits; `finish()`, and
`read()`, wait.  Calling a kernel object instead would re-set every argument per launch
(30–90 µs) — see /work/shared/POCL-NOTES.md.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
import pyopencl as cl

from singa_dsl.errors import SingaConfigError
from singa_dsl.runtime.device import Device
from singa_dsl.runtime.plan_types import BufferDecl, KernelPlan, Launch, ProgramDecl


@dataclass(frozen=True)
class _Prepared:
    launch: Launch
    kernel: cl.Kernel


@dataclass(frozen=True)
class ProfileReport:
    """Seconds spent per kernel name and per launch tag, summed over recorded runs."""
    by_kernel: dict[str, float]
    by_tag: dict[str, float]
    launches: int

    def table(self) -> str:
        rows = [f"{'tag / kernel':40s} {'ms':>10s}"]
        for title, d in (("tags", self.by_tag), ("kernels", self.by_kernel)):
            rows.append(f"-- {title}")
            for name, sec in sorted(d.items(), key=lambda kv: -kv[1]):
                rows.append(f"{name or '(untagged)':40s} {sec * 1e3:10.3f}")
        return "\n".join(rows)


class Executor:
    """`buffers`: BufferDecls, or a dict name → nbytes (float32); `programs`: ProgramDecls,
    or a dict name → (source, options, origin); `launch_lists`: name → launches."""

    def __init__(self, device: Device, buffers: Iterable[BufferDecl] | Mapping[str, int],
                 programs: Iterable[ProgramDecl] | Mapping[str, tuple],
                 launch_lists: Mapping[str, Iterable[Launch]], *, profile: bool = False):
        if profile and not device.profiling:
            raise SingaConfigError("profiling needs a device opened with "
                                   "Device.open(..., profile=True)")
        self.device = device
        self.profile = profile
        if isinstance(buffers, Mapping):
            buffers = [BufferDecl(name, int(nbytes)) for name, nbytes in buffers.items()]
        if isinstance(programs, Mapping):
            programs = [ProgramDecl(name, src, tuple(opts), origin)
                        for name, (src, opts, origin) in programs.items()]
        self._decls = {b.name: b for b in buffers}
        self._buffers = {name: device.alloc(b.nbytes) for name, b in self._decls.items()}
        self._sub_buffers: dict[tuple[str, int], cl.Buffer] = {}
        progs = {p.name: p for p in programs}
        self._programs = {name: device.build(p.source, p.options, p.origin)
                          for name, p in progs.items()}
        self._lists = {name: [self._prepare(l) for l in ls] for name, ls in launch_lists.items()}
        self._events: list[tuple[Launch, cl.Event]] = []

    @classmethod
    def from_plan(cls, device: Device, plan: KernelPlan, *, profile: bool = False) -> "Executor":
        return cls(device, plan.buffers, plan.programs, dict(plan.launch_lists), profile=profile)

    # ---- setup ----------------------------------------------------------------------
    def _prepare(self, launch: Launch) -> _Prepared:
        prog = self._programs.get(launch.program)
        if prog is None:
            raise SingaConfigError(f"launch of {launch.kernel} ({launch.tag or 'untagged'}) "
                                   f"names unknown program {launch.program!r}; known: "
                                   f"{', '.join(sorted(self._programs)) or '(none)'}")
        kernel = cl.Kernel(prog, launch.kernel)
        kernel.set_args(*(self._arg(a, launch) for a in launch.args))
        return _Prepared(launch, kernel)

    def _arg(self, arg: tuple, launch: Launch):
        kind = arg[0]
        if kind == "int":
            return np.int32(arg[1])
        if kind == "float":
            return np.float32(arg[1])
        if kind == "buf":
            return self.buffer(arg[1])
        return self._sub_buffer(arg[1], arg[2], launch)

    def _sub_buffer(self, name: str, element_offset: int, launch: Launch) -> cl.Buffer:
        key = (name, element_offset)
        if key not in self._sub_buffers:
            decl, base = self._decls.get(name), self.buffer(name)
            itemsize = np.dtype(decl.dtype).itemsize
            origin = element_offset * itemsize
            align = self.device.cl_device.mem_base_addr_align // 8
            if origin % align:
                raise SingaConfigError(
                    f"launch of {launch.kernel}: sub-buffer of {name!r} at element "
                    f"{element_offset} is not aligned to {align} bytes",
                    hint="pass the offset as an int kernel argument instead")
            self._sub_buffers[key] = base.get_sub_region(origin, decl.nbytes - origin)
        return self._sub_buffers[key]

    def buffer(self, name: str) -> cl.Buffer:
        try:
            return self._buffers[name]
        except KeyError:
            raise SingaConfigError(f"unknown buffer {name!r}; declared: "
                                   f"{', '.join(sorted(self._buffers)) or '(none)'}") from None

    # ---- running --------------------------------------------------------------------
    def run(self, list_name: str, start: int = 0, stop: int | None = None) -> None:
        """Enqueue the launches of a list in order (``start:stop``, default all); returns
        without waiting."""
        try:
            prepared = self._lists[list_name]
        except KeyError:
            raise SingaConfigError(f"unknown launch list {list_name!r}; known: "
                                   f"{', '.join(sorted(self._lists)) or '(none)'}") from None
        queue = self.device.queue
        for p in prepared[start:stop]:
            ev = cl.enqueue_nd_range_kernel(queue, p.kernel, p.launch.global_size,
                                            p.launch.local_size)
            if self.profile:
                self._events.append((p.launch, ev))

    @property
    def buffer_names(self) -> frozenset:
        return frozenset(self._buffers)

    def set_arg(self, list_name: str, index: int, arg_index: int, value) -> None:
        """Change one argument of one prepared launch (a learning rate that follows its
        schedule); every other argument stays as set once."""
        self._lists[list_name][index].kernel.set_arg(arg_index, value)

    def finish(self) -> None:
        self.device.finish()

    def write(self, name: str, array: np.ndarray, offset: int = 0) -> None:
        """Upload ``array`` into the buffer from element ``offset`` on (waits for it)."""
        decl = self._decls.get(name)
        array = np.ascontiguousarray(array, dtype=decl.dtype if decl else None)
        start = offset * array.itemsize
        if decl is None or offset < 0 or start + array.nbytes > decl.nbytes:
            raise SingaConfigError(f"cannot write {array.nbytes} bytes at element {offset} "
                                   f"into buffer {name!r} "
                                   f"({'undeclared' if decl is None else decl.nbytes})")
        if start:
            cl.enqueue_copy(self.device.queue, self.buffer(name), array, dst_offset=start,
                            is_blocking=True)
        else:
            self.device.upload(self.buffer(name), array)

    def read(self, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
        """The buffer's contents (after all queued work) as its declared dtype."""
        buf = self.buffer(name)
        decl = self._decls[name]
        dtype = np.dtype(decl.dtype)
        out = np.empty(decl.nbytes // dtype.itemsize, dtype)
        self.device.download(buf, out)
        return out.reshape(shape) if shape is not None else out

    # ---- profiling ------------------------------------------------------------------
    def profile_report(self, reset: bool = True) -> ProfileReport:
        """Kernel time per kernel name and per tag for the runs since the last report."""
        if not self.profile:
            raise SingaConfigError("profile_report() needs Executor(..., profile=True)")
        self.finish()
        by_kernel: dict[str, float] = defaultdict(float)
        by_tag: dict[str, float] = defaultdict(float)
        for launch, ev in self._events:
            sec = (ev.profile.end - ev.profile.start) * 1e-9
            by_kernel[launch.kernel] += sec
            by_tag[launch.tag] += sec
        report = ProfileReport(dict(by_kernel), dict(by_tag), len(self._events))
        if reset:
            self._events.clear()
        return report
