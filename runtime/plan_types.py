"""Plain-data records the compiler emits and the executor runs.

They hold only strings, numbers and tuples, so a plan can be written to JSON, read back
and run later without importing the compiler.  Kernel arguments are tagged tuples:

    ("buf", name)                       a declared buffer
    ("int", value)                      a 32-bit int (sizes, leading dims, element offsets)
    ("float", value)                    a 32-bit float (alpha, beta, learning rates)
    ("buf_offset", name, element_off)   a sub-buffer view; its byte offset must respect the
                                        device's base-address alignment — prefer an int
                                        offset argument in the kernel instead
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

ARG_KINDS = ("buf", "int", "float", "buf_offset")


# The int32 flags of the GEMMs that apply a fused update (compiler/fuse_update.py), one per
# param: raised when the GEMM stores a NaN or Inf.
FUSED_FLAGS = "update:nonfinite"


@dataclass(frozen=True)
class BufferDecl:
    """A device buffer allocated once for the life of an executor."""
    name: str
    nbytes: int
    dtype: str = "float32"   # numpy dtype name, used by Executor.read

    def to_json(self) -> dict:
        return {"name": self.name, "nbytes": self.nbytes, "dtype": self.dtype}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "BufferDecl":
        return cls(str(d["name"]), int(d["nbytes"]), str(d.get("dtype", "float32")))


@dataclass(frozen=True)
class ProgramDecl:
    """OpenCL source built once; `origin` names the op and its source position for errors."""
    name: str
    source: str
    options: tuple[str, ...] = ()
    origin: str = ""

    def to_json(self) -> dict:
        return {"name": self.name, "source": self.source, "options": list(self.options),
                "origin": self.origin}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "ProgramDecl":
        return cls(str(d["name"]), str(d["source"]), tuple(str(o) for o in d.get("options", ())),
                   str(d.get("origin", "")))


@dataclass(frozen=True)
class Launch:
    """One kernel launch; `tag` (usually the layer name) groups time in profile reports."""
    program: str
    kernel: str
    global_size: tuple[int, ...]
    local_size: tuple[int, ...] | None
    args: tuple[tuple, ...]
    tag: str = ""

    def __post_init__(self):
        for a in self.args:
            if not a or a[0] not in ARG_KINDS:
                raise ValueError(f"launch of {self.kernel}: bad argument {a!r}; "
                                 f"kinds are {', '.join(ARG_KINDS)}")
        if self.local_size is not None and len(self.local_size) != len(self.global_size):
            raise ValueError(f"launch of {self.kernel}: local size {self.local_size} and "
                             f"global size {self.global_size} differ in rank")

    def to_json(self) -> dict:
        return {"program": self.program, "kernel": self.kernel,
                "global_size": list(self.global_size),
                "local_size": None if self.local_size is None else list(self.local_size),
                "args": [list(a) for a in self.args], "tag": self.tag}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Launch":
        local = d.get("local_size")
        return cls(str(d["program"]), str(d["kernel"]), tuple(int(g) for g in d["global_size"]),
                   None if local is None else tuple(int(v) for v in local),
                   tuple(_arg_from_json(a) for a in d["args"]), str(d.get("tag", "")))


def _arg_from_json(a) -> tuple:
    kind = a[0]
    if kind == "buf":
        return ("buf", str(a[1]))
    if kind == "int":
        return ("int", int(a[1]))
    if kind == "float":
        return ("float", float(a[1]))
    if kind == "buf_offset":
        return ("buf_offset", str(a[1]), int(a[2]))
    raise ValueError(f"unknown kernel argument kind {kind!r}; kinds are {', '.join(ARG_KINDS)}")


@dataclass(frozen=True)
class KernelPlan:
    """Everything one executor needs: buffers, programs and named launch lists."""
    buffers: tuple[BufferDecl, ...] = ()
    programs: tuple[ProgramDecl, ...] = ()
    launch_lists: tuple[tuple[str, tuple[Launch, ...]], ...] = field(default=())

    @classmethod
    def build(cls, buffers: Iterable[BufferDecl], programs: Iterable[ProgramDecl],
              launch_lists: Mapping[str, Iterable[Launch]]) -> "KernelPlan":
        """Convenience constructor from lists and a dict.  Programs with the same name and
        source (a GEMM variant emitted by several layers) are kept once, their origins
        joined; the same name with another source is an error."""
        progs: dict[str, ProgramDecl] = {}
        for p in programs:
            seen = progs.setdefault(p.name, p)
            if (seen.source, seen.options) != (p.source, p.options):
                raise ValueError(f"two different programs are both named {p.name!r}")
            if p.origin and p.origin not in seen.origin.split("; "):
                progs[p.name] = replace(seen, origin="; ".join(filter(None, (seen.origin,
                                                                             p.origin))))
        return cls(tuple(buffers), tuple(progs.values()),
                   tuple((name, tuple(ls)) for name, ls in launch_lists.items()))

    def to_json(self) -> dict:
        return {"buffers": [b.to_json() for b in self.buffers],
                "programs": [p.to_json() for p in self.programs],
                "launch_lists": {name: [l.to_json() for l in ls]
                                 for name, ls in self.launch_lists}}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "KernelPlan":
        return cls(tuple(BufferDecl.from_json(b) for b in d.get("buffers", ())),
                   tuple(ProgramDecl.from_json(p) for p in d.get("programs", ())),
                   tuple((str(name), tuple(Launch.from_json(l) for l in ls))
                         for name, ls in d.get("launch_lists", {}).items()))


@dataclass(frozen=True)
class Exchange:
    """A bridge's transfer between two workers of a group (SINGA's BridgeSrc/BridgeDst), at a
    point of one worker's train list (``compiler/lower_worker.py`` emits them): launches
    ``[0, at)`` come before it.  A send reads the first ``count`` values of ``buffer`` off the
    device once those launches are done and sends them to the peer; a receive writes what the
    peer sent into the first ``count`` values of ``buffer`` before launch ``at`` runs.  Both
    ends of a transfer carry the same ``ident`` (frames name it as their target)."""
    at: int
    send: bool
    backward: bool       # a gradient going back (else a forward value)
    peer: int            # the other worker's index in the group
    ident: int
    buffer: str
    count: int
    dtype: str           # float32 | int32 (moved as raw 4-byte values)
    name: str            # the bridge, for messages: "bridge_src(slice(ip1)@1->...)"

    def to_json(self) -> dict:
        return dict(self.__dict__)
