"""Frames over MPI, without burning a core while waiting.

MPICH's blocking receive spins; servers and workers share cores, so a waiting rank here
polls with ``Iprobe`` and sleeps between polls (50 µs growing to 2 ms), which costs ~nothing
and adds at most a poll interval of latency.  Sizes are checked before a receive buffer is
allocated (``messages.check_size``), and sends are non-blocking (``Isend``) with their buffers
kept alive until MPI reports them complete.
"""
from __future__ import annotations

import time

import numpy as np

from .messages import Frame, FrameError, check_size, decode, decode_header, encode_parts

TAG = 17             # headers (with any inline record)
TAG_VALUES = 18      # raw float32 values, right after their header from the same rank
_MIN_SLEEP, _MAX_SLEEP = 50e-6, 2e-3


class Transport:
    def __init__(self, comm):
        from mpi4py import MPI
        self._mpi = MPI
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self._pending: list = []          # (request, buffer) of sends in flight
        self._status = MPI.Status()

    def send(self, dst: int, frame: Frame) -> None:
        """Queue a frame; its values are sent from the caller's array without a copy, so the
        caller must not change them until ``flush()`` (or the reply that proves receipt)."""
        head, raw = encode_parts(frame)
        req = self.comm.Isend([head, self._mpi.BYTE], dest=dst, tag=TAG)
        self._pending.append((req, head))
        if raw is not None:
            req = self.comm.Isend([raw, self._mpi.BYTE], dest=dst, tag=TAG_VALUES)
            self._pending.append((req, raw))
        self._reap()

    def progress(self) -> None:
        """Let MPI move the sends in flight (call while busy with something else)."""
        self._reap()

    def _reap(self) -> None:
        if self._pending:
            self._pending = [(r, b) for r, b in self._pending if not r.Test()]

    def poll(self, sink=None) -> Frame | None:
        """One frame if one has arrived, else None; never blocks.  ``sink(header)`` may
        return the float32 array a frame's values are to be received into (else one is
        allocated)."""
        self._reap()
        if not self.comm.Iprobe(source=self._mpi.ANY_SOURCE, tag=TAG, status=self._status):
            return None
        src, nbytes = self._status.Get_source(), self._status.Get_count(self._mpi.BYTE)
        try:
            check_size(nbytes)
        except FrameError:
            self._discard(src, TAG)
            raise
        buf = bytearray(nbytes)
        self.comm.Recv([buf, self._mpi.BYTE], source=src, tag=TAG)
        header, _ = decode_header(buf)
        if header.src != src:
            raise FrameError(f"bad frame: rank {src} sent a frame claiming to be from "
                             f"rank {header.src}")
        values = None
        if header.values_follow:
            self.comm.Probe(source=src, tag=TAG_VALUES, status=self._status)
            got = self._status.Get_count(self._mpi.BYTE)
            if got != header.nbytes:
                self._discard(src, TAG_VALUES)
                raise FrameError(f"bad frame from rank {src}: header says {header.nbytes} "
                                 f"value bytes, {got} arrived")
            values = sink(header) if sink is not None else None
            if values is None or values.dtype != np.float32 or values.nbytes != got \
                    or not values.flags.c_contiguous:
                values = np.empty(got // 4, np.float32)
            self.comm.Recv([values, self._mpi.BYTE], source=src, tag=TAG_VALUES)
        return decode(buf, values)

    def _discard(self, src: int, tag: int) -> None:
        """Take a message that is not ours off the queue without allocating its size."""
        try:
            self.comm.Recv([bytearray(1), self._mpi.BYTE], source=src, tag=tag)
        except self._mpi.Exception:
            pass       # MPI reports the truncation; the message is gone, which is the point

    def wait(self, sink=None, idle=None) -> Frame:
        """The next frame; sleeps between polls.  ``idle()``, if given, is called on each
        empty poll (a rank's chance to notice a stop or a timeout)."""
        sleep = _MIN_SLEEP
        while True:
            frame = self.poll(sink)
            if frame is not None:
                return frame
            if idle is not None:
                idle()
            time.sleep(sleep)
            sleep = min(_MAX_SLEEP, sleep * 2)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait (sleeping) until every send has been taken by its receiver."""
        deadline = time.monotonic() + timeout
        sleep = _MIN_SLEEP
        while self._pending and time.monotonic() < deadline:
            self._reap()
            time.sleep(sleep)
            sleep = min(_MAX_SLEEP, sleep * 2)
