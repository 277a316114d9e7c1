"""On-disk cache of decoded, preprocessed arrays, keyed by file content and preprocessing.

A second run over the same data reads .npy files instead of decoding again; editing a
file or changing a preprocessing parameter changes the key, so stale entries are never used.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mmrt import atomic

CACHE_FORMAT = 3  # bump when decoding changes in a way the parameters do not capture


def cache_root() -> Path:
    """mmrt's cache folder: ``$MMRT_CACHE_DIR``, else ``~/.cache/mmrt``."""
    return Path(os.environ.get("MMRT_CACHE_DIR") or Path.home() / ".cache" / "mmrt")


class DecodeCache:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else cache_root() / "decoded"
        self.stats: Counter[str] = Counter()  # "hit" / "miss" counts, for logs and tests
        self._digests: dict[tuple[str, int, int], str] = {}

    def _file_digest(self, path: str) -> str:
        st = os.stat(path)
        memo = (path, st.st_size, st.st_mtime_ns)  # hash each file once per process
        if memo not in self._digests:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            self._digests[memo] = h.hexdigest()
        return self._digests[memo]

    def key(self, kind: str, path: str, params: dict) -> str:
        blob = json.dumps({"kind": kind, "file": self._file_digest(path), "params": params,
                           "format": CACHE_FORMAT}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def get(self, kind: str, path: str, params: dict, decode: Callable[[], np.ndarray]) -> np.ndarray:
        """The cached array for (file content, params), decoding and storing it on a miss."""
        key = self.key(kind, path, params)
        entry = self.root / kind / key[:2] / f"{key}.npy"
        if entry.is_file():
            try:
                arr = np.load(entry, allow_pickle=False)
                self.stats["hit"] += 1
                return arr
            except (ValueError, OSError, EOFError):
                entry.unlink(missing_ok=True)  # torn or corrupt entry: decode again
        arr = decode()
        self.stats["miss"] += 1
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            buf = io.BytesIO()
            np.save(buf, arr, allow_pickle=False)
            atomic.write_bytes(entry, buf.getvalue())
        except OSError:
            self.stats["write_error"] += 1  # a read-only cache slows runs down, it does not fail them
        return arr
