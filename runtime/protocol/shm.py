"""Triton's system shared-memory extension: a process on the server's machine (a rig's capture
process) registers a window of a POSIX shared-memory object by name, then sends inference
requests whose tensors say "region R, offset o, n bytes" instead of carrying the bytes, and may
have outputs written there too. No torch.

Safety: a key is one name under /dev/shm (no path), opened only if it is a regular file this
user may read and write; a window must lie inside the object; regions are capped in number.
Tensors are copied with pread/pwrite, never through a mapping: a client that shrinks its
object after registering gets an error, where a mapping would take the server down (SIGBUS).
Linux only (/dev/shm).
"""

from __future__ import annotations

import os
import stat
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmrt.runtime.engine.status import InferError, Status, invalid, shown

SHM_DIR = Path("/dev/shm")
MAX_NAME = 255  # characters in a region's name or a key (NAME_MAX)
CANNOT_OPEN = "cannot be opened (expected a shared-memory object this server's user may read and write)"


@dataclass(frozen=True)
class Region:
    name: str
    key: str
    offset: int
    byte_size: int
    fd: int


class SharedMemoryRegions:
    def __init__(self, max_regions: int = 64):
        self.max_regions = max_regions
        self.lock = threading.RLock()
        self.regions: dict[str, Region] = {}

    def register(self, name: str, key: str, offset: int, byte_size: int) -> None:
        if not name or len(name) > MAX_NAME:
            raise invalid(f"a shared-memory region needs a name of 1 to {MAX_NAME} characters")
        plain = key.lstrip("/")
        if not plain or len(plain) > MAX_NAME or "/" in plain or "\0" in plain or plain in (".", ".."):
            raise invalid(f"shared-memory key {shown(key)}: expected one name under {SHM_DIR} (no path)")
        if not SHM_DIR.is_dir():
            raise InferError(Status.UNAVAILABLE, f"system shared memory needs {SHM_DIR} (Linux)")
        try:  # one answer for every failure: a client learns nothing of what else is there
            fd = os.open(SHM_DIR / plain, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            raise invalid(f"shared-memory key {shown(key)}: {CANNOT_OPEN}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise invalid(f"shared-memory key {shown(key)}: {CANNOT_OPEN}")
            if offset < 0 or byte_size <= 0 or offset + byte_size > info.st_size:
                raise invalid(f"region {shown(name)}: offset {offset} + byte_size {byte_size} is outside "
                              f"{shown(key)} ({info.st_size} bytes)")
            with self.lock:
                if name in self.regions:
                    raise InferError(Status.ALREADY_EXISTS, f"region {shown(name)} is already registered")
                if len(self.regions) >= self.max_regions:
                    raise InferError(Status.RESOURCE_EXHAUSTED, f"{len(self.regions)} regions are "
                                     f"registered, at most {self.max_regions}: unregister some first")
                self.regions[name] = Region(name, key, offset, byte_size, fd)
        except BaseException:
            os.close(fd)
            raise

    def unregister(self, name: str = "") -> None:
        """One region, or every region for an empty name (as Triton). Unknown names are no error."""
        with self.lock:
            gone = list(self.regions) if not name else [name] if name in self.regions else []
            for n in gone:
                os.close(self.regions.pop(n).fd)

    def status(self, name: str = "") -> list[Region]:
        with self.lock:
            if name and name not in self.regions:
                raise InferError(Status.NOT_FOUND, f"no shared-memory region {shown(name)} is registered")
            return [r for r in self.regions.values() if not name or r.name == name]

    def close(self) -> None:
        self.unregister()

    def check(self, name: str, offset: int, size: int, what: str) -> Region:
        """The region, if ``size`` bytes at ``offset`` lie inside it."""
        with self.lock:
            region = self.regions.get(name)
        if region is None:
            raise invalid(f"{what}: no shared-memory region {shown(name)} is registered")
        if offset < 0 or size < 0 or offset + size > region.byte_size:
            raise invalid(f"{what}: {size} bytes at offset {offset} do not fit region {shown(name)} "
                          f"({region.byte_size} bytes)")
        return region

    @contextmanager
    def _window(self, name: str, offset: int, size: int, what: str):
        """A private fd of region ``name`` (an unregister meanwhile cannot close it under us) and the
        absolute offset of ``size`` bytes at ``offset`` inside it."""
        with self.lock:
            region = self.check(name, offset, size, what)
            fd = os.dup(region.fd)
        try:
            yield fd, region.offset + offset
        finally:
            os.close(fd)

    def read(self, name: str, offset: int, size: int, what: str) -> bytearray:
        """``size`` bytes of a region, copied out."""
        out = bytearray(size)
        with self._window(name, offset, size, what) as (fd, at):
            done = os.preadv(fd, [out], at) if size else 0
        if done != size:
            raise invalid(f"{what}: region {shown(name)} holds only {done} of the {size} bytes asked for "
                          f"(its shared-memory object shrank)")
        return out

    def write(self, name: str, offset: int, data: np.ndarray, what: str) -> None:
        raw = memoryview(np.ascontiguousarray(data).data).cast("B")
        with self._window(name, offset, raw.nbytes, what) as (fd, at):
            os.pwritev(fd, [raw], at)
