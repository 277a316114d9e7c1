"""Admission control: how many inference calls and streams may be open at once. Past a cap a new
one is refused at once (RESOURCE_EXHAUSTED) instead of queueing; health checks and metadata are
never counted, so they answer whatever the load. A drain waits here for what was admitted.

Everything runs on the server's event loop thread, so the counts need no lock.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass

from mmrt.knobs import knob
from mmrt.runtime.engine.status import InferError, Status

FLAGS = {"calls": "--max-calls", "streams": "--max-streams", "uploads": "--max-uploads"}


@dataclass(frozen=True)
class AdmissionOptions:
    max_calls: int = knob(64, "--max-calls", 1, "inference calls at once, gRPC and REST together; past it, "
                          "RESOURCE_EXHAUSTED at once")
    max_streams: int = knob(64, "--max-streams", 1, "open ModelStreamInfer streams (an idle one holds no "
                            "thread); past it, RESOURCE_EXHAUSTED")
    stream_idle_s: float = knob(120.0, "--stream-idle-s", 0.001,
                                "close a stream with no request for this long")
    max_uploads: int = knob(64, "--max-uploads", 1, "REST bodies being received at once, read before a call "
                            "is admitted (a slow upload holds no --max-calls slot); past it, 429")


class Admission:
    def __init__(self, options: AdmissionOptions):
        self.caps = {"calls": options.max_calls, "streams": options.max_streams,
                     "uploads": options.max_uploads}
        self.open = dict.fromkeys(self.caps, 0)
        self.idle = asyncio.Event()
        self.idle.set()

    @asynccontextmanager
    async def slot(self, kind: str):
        """Hold one of ``kind``'s slots for the ``with`` block; none free: RESOURCE_EXHAUSTED."""
        if self.open[kind] >= self.caps[kind]:
            raise InferError(Status.RESOURCE_EXHAUSTED, f"{self.open[kind]} {kind} are open, the server's "
                             f"{FLAGS[kind]}; try again shortly")
        self.open[kind] += 1
        self.idle.clear()
        try:
            yield
        finally:
            self.open[kind] -= 1
            if not any(self.open.values()):
                self.idle.set()

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until nothing admitted is open (or ``timeout_s`` passes); True if idle. Counted
        again after each wake-up: a REST call takes its call slot as its upload slot frees."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout_s, 0)
        while any(self.open.values()):
            try:
                await asyncio.wait_for(self.idle.wait(), max(deadline - loop.time(), 0))
            except asyncio.TimeoutError:  # (TimeoutError itself from Python 3.11)
                return False
        return True
