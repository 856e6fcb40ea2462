"""Frames over MPI, without burning a core while waiting.

MPICH's blocking receive spins; servers and workers share cores, so a waiting rank here
polls with ``Iprobe`` and sleeps between polls (50 µs growing to 2 ms), which costs ~nothing
and adds at most a poll interval of latency.  Sizes are checked before a receive buffer is
allocated (``messages.check_size``), and sends are non-blocking (``Isend``) with their buffers
kept alive until MPI reports them complete.
"""
from __future__ import annotations

import time

from .messages import Frame, FrameError, check_size, decode, encode

TAG = 17
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
        buf = encode(frame)
        req = self.comm.Isend([buf, self._mpi.BYTE], dest=dst, tag=TAG)
        self._pending.append((req, buf))
        self._reap()

    def _reap(self) -> None:
        if self._pending:
            self._pending = [(r, b) for r, b in self._pending if not r.Test()]

    def poll(self) -> Frame | None:
        """One frame if one has arrived, else None; never blocks."""
        self._reap()
        if not self.comm.Iprobe(source=self._mpi.ANY_SOURCE, tag=TAG, status=self._status):
            return None
        src, nbytes = self._status.Get_source(), self._status.Get_count(self._mpi.BYTE)
        try:
            check_size(nbytes)
        except FrameError:
            # Take the oversized message off the queue a byte at a time is impossible with
            # MPI; receive it into a 1-byte buffer, which MPI truncates with an error.
            try:
                self.comm.Recv([bytearray(1), self._mpi.BYTE], source=src, tag=TAG)
            except self._mpi.Exception:
                pass
            raise
        buf = bytearray(nbytes)
        self.comm.Recv([buf, self._mpi.BYTE], source=src, tag=TAG)
        frame = decode(buf)
        if frame.src != src:
            raise FrameError(f"bad frame: rank {src} sent a frame claiming to be from "
                             f"rank {frame.src}")
        return frame

    def wait(self, idle=None) -> Frame:
        """The next frame; sleeps between polls.  ``idle()``, if given, is called on each
        empty poll (a rank's chance to notice a stop or a timeout)."""
        sleep = _MIN_SLEEP
        while True:
            frame = self.poll()
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
