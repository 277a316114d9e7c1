"""Blocking work moved off the event loop onto worker threads, for gRPC and REST alike."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor


def _guarded(fn, *args):
    try:
        return fn(*args)
    except StopIteration as e:  # asyncio cannot hand a StopIteration to a future: the call would hang
        raise RuntimeError(f"{fn.__name__} raised StopIteration") from e


async def on_worker(pool: Executor, fn, *args):
    """``fn(*args)`` on a thread of ``pool``; its result or its exception, awaited."""
    return await asyncio.get_running_loop().run_in_executor(pool, _guarded, fn, *args)
