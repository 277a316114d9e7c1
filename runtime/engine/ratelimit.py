"""Warnings a client can trigger at will are rate-limited, so a loop of bad requests cannot fill
an edge box's disk with logs: one line per key per interval, with a count of those held back."""

from __future__ import annotations

import logging
import threading
import time


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, interval_s: float = 10.0):
        self.logger, self.interval_s = logger, interval_s
        self.lock = threading.Lock()
        self.last: dict[str, float] = {}  # key -> when its last line was written
        self.held: dict[str, int] = {}  # key -> lines held back since

    def warning(self, key: str, message: str, *args) -> bool:
        """Log ``message % args`` unless ``key`` logged less than ``interval_s`` ago; True if logged."""
        return self._log(key, message, args, exc_info=False)

    def exception(self, key: str, message: str, *args) -> bool:
        """As ``warning``, with the traceback of the exception being handled."""
        return self._log(key, message, args, exc_info=True)

    def _log(self, key: str, message: str, args: tuple, exc_info: bool) -> bool:
        now = time.monotonic()
        with self.lock:
            if now - self.last.get(key, -self.interval_s) < self.interval_s:
                self.held[key] = self.held.get(key, 0) + 1
                return False
            self.last[key] = now
            held = self.held.pop(key, 0)
        suffix = f" ({held} more like it in the last {self.interval_s:g} s not logged)" if held else ""
        self.logger.warning(message + suffix, *args, exc_info=exc_info)
        return True
