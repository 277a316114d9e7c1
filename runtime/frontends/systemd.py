"""systemd's notify protocol, when the server runs under a ``Type=notify`` unit: READY=1 once
every graph is loaded and warmed, STATUS= lines, WATCHDOG=1 pings every quarter of
``WATCHDOG_USEC`` while ``runtime.watchdog`` judges the server alive (a dead loop, a stalled
pool or a hung engine stops them, and systemd restarts the service), STOPPING=1 when a drain
starts. Without ``NOTIFY_SOCKET`` every call is a no-op. No torch, no libsystemd: a datagram to
a Unix socket is the whole protocol.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class Systemd:
    def __init__(self, environ: Mapping[str, str] = os.environ):
        address = environ.get("NOTIFY_SOCKET") or None
        self.address = "\0" + address[1:] if address and address.startswith("@") else address
        usec, pid = environ.get("WATCHDOG_USEC"), environ.get("WATCHDOG_PID")
        mine = pid is None or pid == str(os.getpid())
        self.watchdog_s = int(usec) / 1e6 if usec and usec.isdigit() and int(usec) > 0 and mine else None
        self.stopped = threading.Event()

    def notify(self, *lines: str) -> None:
        if self.address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto("\n".join(lines).encode(), self.address)
        except OSError as e:  # systemd gone or the socket unreadable: serving goes on
            log.warning("systemd notify failed (%s)", e)

    @property
    def tick_s(self) -> float | None:
        """How often the watchdog is judged and fed (a quarter of WatchdogSec); None without one."""
        return self.watchdog_s / 4 if self.address is not None and self.watchdog_s is not None else None

    def start_watchdog(self, healthy: Callable[[], bool]) -> None:
        """Every ``tick_s``, ping if ``healthy()`` (which must not block: ``runtime.watchdog``)."""
        tick = self.tick_s
        if tick is None:
            return

        def loop() -> None:
            while not self.stopped.wait(tick):
                if healthy():
                    self.notify("WATCHDOG=1")

        threading.Thread(target=loop, name="mmrt-watchdog", daemon=True).start()

    def stop(self) -> None:
        self.stopped.set()
