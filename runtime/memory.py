"""Keep the server's resident memory flat under concurrency (glibc only; a no-op elsewhere).

glibc gives each thread that allocates its own malloc arena, up to 8 per core, and memory freed in
one arena is not reused by the others: with dozens of gRPC and ONNX Runtime threads the server's
resident memory crept up under a soak (+6% over 4 minutes). Two arenas keep it flat and were
slightly faster (soak: 711 against 672 req/s). Equivalent to MALLOC_ARENA_MAX=2, set at run time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_malloc_arenas(count: int = 2) -> bool:
    """True if glibc took the limit; an explicit MALLOC_ARENA_MAX in the environment wins."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return bool(libc is not None and libc.mallopt(M_ARENA_MAX, count) == 1)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
