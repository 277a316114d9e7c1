"""Whether the server is alive enough for systemd's watchdog to be fed: judged, never waited for.

Each tick (a quarter of WatchdogSec) kicks every heartbeat that is not still running: the event
loop (a callback scheduled on it), and the inference path (a probe request on the inference
worker pool, through every serving version, counted in flight by the repository like a request,
so the version cannot be freed under it). A heartbeat that has not answered within ``stale_s``
is a miss for that tick; the watchdog is fed unless ``misses`` ticks in a row missed, so one slow
probe on a busy server never costs a restart, while a dead loop, a stalled pool or a hung engine
stops the pings within ``stale_s + misses`` ticks, and systemd restarts the service WatchdogSec
after the last ping. A tick never blocks: the ping goes out on time whatever a probe is doing.
No torch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

MISSES = 3  # ticks in a row without every heartbeat before the pings stop
Answered = Callable[[bool], None]


class Heartbeat:
    """Something that must keep answering: ``start(answered)`` begins one round of it without
    blocking, and ``answered(ok)`` is called (from any thread) when the round ends."""

    def __init__(self, name: str, start: Callable[[Answered], object]):
        self.name, self.start = name, start
        self.lock = threading.Lock()
        self.last = time.monotonic()  # the last round that answered ok
        self.running = False

    def kick(self) -> None:
        with self.lock:
            if self.running:
                return  # still on the last round: its lateness is what ``age`` measures
            self.running = True
        try:
            self.start(self._answered)
        except Exception as e:  # noqa: BLE001 - a loop or pool that cannot take work: no answer
            log.warning("watchdog: the %s could not take its heartbeat (%s)", self.name, e)
            self._answered(False)

    def _answered(self, ok: bool) -> None:
        with self.lock:
            self.running = False
            if ok:
                self.last = time.monotonic()

    def age(self) -> float:
        with self.lock:
            return time.monotonic() - self.last


class Watchdog:
    def __init__(self, heartbeats: list[Heartbeat], stale_s: float, misses: int = MISSES):
        self.heartbeats, self.stale_s, self.misses = heartbeats, stale_s, misses
        self.missed = 0

    def tick(self) -> bool:
        """Kick every heartbeat; whether to feed the watchdog now."""
        late = [h.name for h in self.heartbeats if h.age() > self.stale_s]
        for h in self.heartbeats:
            h.kick()
        self.missed = self.missed + 1 if late else 0
        if late:
            log.warning("watchdog: no answer from the %s for %.1f s (miss %d of %d before the pings stop)",
                        " or the ".join(late), max(h.age() for h in self.heartbeats), self.missed,
                        self.misses)
        return self.missed < self.misses
