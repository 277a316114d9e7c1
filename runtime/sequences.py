"""Streams where modalities arrive one by one: per-sequence embeddings, as Triton's sequence
protocol (``sequence_id``, ``sequence_start``, ``sequence_end``) frames them.

Each request of a sequence runs only its own modalities' encoders; the store keeps the newest
embedding of each modality, and every answer is fused from all of them. The first request of
an unknown sequence must carry ``sequence_start``; ``sequence_end`` closes it; a sequence idle
for ``idle_timeout_s`` is dropped; at most ``max_sequences`` are open at once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from mmrt.runtime.errors import InferError, Status, invalid


@dataclass
class Sequence:
    batch: int
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)  # modality -> [B, d]
    touched: float = field(default_factory=time.monotonic)


class SequenceStore:
    def __init__(self, max_sequences: int = 1024, idle_timeout_s: float = 60.0):
        self.max_sequences, self.idle_timeout_s = max_sequences, idle_timeout_s
        self.open: dict[object, Sequence] = {}
        self.lock = threading.Lock()

    def _expire(self, now: float) -> None:
        for key in [k for k, s in self.open.items() if now - s.touched > self.idle_timeout_s]:
            del self.open[key]

    def _refuse_when_full(self, sequence_id) -> None:
        if len(self.open) >= self.max_sequences:
            raise InferError(Status.RESOURCE_EXHAUSTED, f"sequence {sequence_id!r}: {self.max_sequences} "
                             f"sequences are open already (the server's --max-sequences)")

    def check(self, sequence_id, start: bool, batch: int) -> None:
        """Refuse before any encoder runs: an unknown sequence without start, a full store,
        or a batch size that differs from the sequence's."""
        with self.lock:
            self._expire(time.monotonic())
            known = self.open.get(sequence_id)
            if known is None and not start:
                raise invalid(f"sequence {sequence_id!r}: unknown or expired (its first request must set "
                              f"sequence_start)")
            if known is None:
                self._refuse_when_full(sequence_id)
            if known is not None and not start and known.batch != batch:
                raise invalid(f"sequence {sequence_id!r}: batch size {batch}, the sequence started with "
                              f"{known.batch}")

    def update(self, sequence_id, start: bool, end: bool, batch: int,
               embeddings: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Merge this request's embeddings (newer readings replace older ones); returns every
        modality's embedding received so far in the sequence."""
        with self.lock:
            seq = self.open.get(sequence_id)
            if start or seq is None:
                if seq is None:  # new, or it expired while this request's encoders ran
                    self._refuse_when_full(sequence_id)
                seq = self.open[sequence_id] = Sequence(batch)
            seq.embeddings.update(embeddings)
            seq.touched = time.monotonic()
            merged = dict(seq.embeddings)
            if end:
                del self.open[sequence_id]
            return merged

    def __len__(self) -> int:
        with self.lock:
            return len(self.open)
