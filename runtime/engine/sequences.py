"""Streams where modalities arrive one by one: per-sequence embeddings, as Triton's sequence
protocol (``sequence_id``, ``sequence_start``, ``sequence_end``) frames them.

Each request of a sequence runs only its own modalities' encoders; the store keeps the newest
embedding of each modality, and every answer is fused from all of them.

One sequence's requests take turns in arrival order: a request waits for the one before it to
finish, is checked against the sequence as that one left it, runs its encoders and applies its
embeddings, and only then does the next one start. So a request without ``sequence_start``
never creates or revives a sequence, a ``sequence_end`` never cuts a request already running,
and a batch-size change is refused instead of corrupting the state. A sequence idle for
``idle_timeout_s`` is dropped; at most ``max_sequences`` are open, holding at most ``max_bytes``
of embeddings (each reserves its largest size, batch x modalities x d floats, when it starts).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mmrt.knobs import knob
from mmrt.runtime.engine.status import InferError, Status, invalid, shown

WAIT_SLICE_S = 0.05  # how often a request waiting for its turn checks that its caller still waits


@dataclass(frozen=True)
class SequenceLimits:
    max_sequences: int = knob(1024, "--max-sequences", 1, "open streaming sequences")
    idle_timeout_s: float = knob(60.0, "--sequence-idle-s", 0.001, "drop a sequence idle this long")
    max_mb: float = knob(64.0, "--max-sequence-mb", 0, "embeddings held by open sequences, all together")


@dataclass
class Sequence:
    batch: int
    reserved: int  # bytes counted against the store's limit
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)  # modality -> [B, d]
    touched: float = field(default_factory=time.monotonic)
    tickets: int = 0  # turns handed out so far
    serving: int = 0  # the turn now allowed to run
    abandoned: set[int] = field(default_factory=set)  # turns whose callers left while waiting
    ended: bool = False  # sequence_end applied; only a sequence_start revives it
    fresh: bool = True  # created by a sequence_start whose request has not applied yet

    @property
    def busy(self) -> bool:
        return self.serving < self.tickets


class Turn:
    """One request's turn on a sequence: ``apply`` its embeddings, then leave (``with`` does).
    Nothing changes in the sequence unless the request gets as far as ``apply``."""

    def __init__(self, store: SequenceStore, key, seq: Sequence, start: bool, end: bool, batch: int):
        self.store, self.key, self.seq = store, key, seq
        self.start, self.end, self.batch = start, end, batch
        self.applied = False

    def apply(self, embeddings: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Merge this request's embeddings (newer readings replace older ones); returns every
        modality's embedding the sequence holds now."""
        seq = self.seq
        with self.store.lock:
            if self.start:  # the sequence begins again from nothing, at this batch size
                size = self.batch * self.store.row_bytes
                self.store.reserved -= seq.reserved - size  # _admit reserved the larger of the two
                seq.batch, seq.reserved, seq.embeddings, seq.ended = self.batch, size, {}, False
            seq.embeddings.update(embeddings)
            seq.touched, seq.fresh, self.applied = time.monotonic(), False, True
            merged = dict(seq.embeddings)
            if self.end:
                seq.ended, seq.embeddings = True, {}
            return merged

    def __enter__(self) -> Turn:
        return self

    def __exit__(self, *exc) -> None:
        with self.store.lock:
            if not self.applied and self.seq.fresh:  # its creating request failed: it never began
                self.seq.ended = True
            self.store._advance(self.key, self.seq)


class SequenceStore:
    def __init__(self, limits: SequenceLimits = SequenceLimits(), row_bytes: int = 0):
        self.limits, self.row_bytes = limits, row_bytes  # row_bytes: one row of every modality
        self.max_bytes = int(limits.max_mb * (1 << 20))
        self.open: dict[object, Sequence] = {}
        self.reserved = 0
        self.lock = threading.Lock()
        self.turns = threading.Condition(self.lock)

    def turn(self, sequence_id, start: bool, end: bool, batch: int,
             alive: Callable[[], bool] = lambda: True) -> Turn:
        """Wait for this request's turn on the sequence (refusing what its state forbids); gives up
        with CANCELLED if ``alive()`` turns false while waiting."""
        with self.lock:
            self._expire(time.monotonic())
            seq = self.open.get(sequence_id)
            if seq is None:
                if not start:
                    raise invalid(f"sequence {shown(sequence_id)}: unknown or expired (its first request "
                                  f"must set sequence_start)")
                seq = self._create(sequence_id, batch)
            ticket, seq.tickets = seq.tickets, seq.tickets + 1
            seq.touched = time.monotonic()
            while seq.serving != ticket:
                self.turns.wait(WAIT_SLICE_S)
                if seq.serving != ticket and not alive():
                    seq.abandoned.add(ticket)
                    raise InferError(Status.CANCELLED, "the client left while its request waited")
            try:
                self._admit(sequence_id, seq, start, batch)
            except InferError:
                self._advance(sequence_id, seq)
                raise
            return Turn(self, sequence_id, seq, start, end, batch)

    def _create(self, sequence_id, batch: int) -> Sequence:
        if len(self.open) >= self.limits.max_sequences:
            raise InferError(Status.RESOURCE_EXHAUSTED, f"sequence {shown(sequence_id)}: "
                             f"{self.limits.max_sequences} sequences are open already (the server's "
                             f"--max-sequences)")
        self._reserve(sequence_id, batch * self.row_bytes)
        seq = self.open[sequence_id] = Sequence(batch, batch * self.row_bytes)
        return seq

    def _reserve(self, sequence_id, size: int) -> None:
        if self.reserved + size > self.max_bytes:
            raise InferError(Status.RESOURCE_EXHAUSTED, f"sequence {shown(sequence_id)}: open sequences "
                             f"hold {self.reserved} bytes of embeddings, {size} more would pass the "
                             f"server's --max-sequence-mb {self.limits.max_mb:g}")
        self.reserved += size

    def _admit(self, sequence_id, seq: Sequence, start: bool, batch: int) -> None:
        """At this request's turn: may it run on the sequence as the previous request left it?"""
        if start:  # a restart may need more room: reserve it now (apply gives back any excess)
            extra = batch * self.row_bytes - seq.reserved
            if extra > 0:
                self._reserve(sequence_id, extra)
                seq.reserved += extra
        elif seq.ended:
            raise invalid(f"sequence {shown(sequence_id)}: ended by an earlier request (start it again "
                          f"with sequence_start)")
        elif seq.batch != batch:
            raise invalid(f"sequence {shown(sequence_id)}: batch size {batch}, the sequence started with "
                          f"{seq.batch}")

    def _advance(self, sequence_id, seq: Sequence) -> None:
        """Hand the turn on (skipping callers that left); drop an ended sequence nobody waits on."""
        seq.serving += 1
        while seq.serving in seq.abandoned:
            seq.abandoned.discard(seq.serving)
            seq.serving += 1
        if seq.ended and not seq.busy:
            self._drop(sequence_id, seq)
        self.turns.notify_all()

    def _drop(self, sequence_id, seq: Sequence) -> None:
        if self.open.get(sequence_id) is seq:
            del self.open[sequence_id]
            self.reserved -= seq.reserved

    def _expire(self, now: float) -> None:
        for key, seq in list(self.open.items()):
            if not seq.busy and now - seq.touched > self.limits.idle_timeout_s:
                self._drop(key, seq)

    def end(self, sequence_id) -> None:
        """End a sequence from outside (its id started again on another model version): dropped now,
        or after the request running on it."""
        with self.lock:
            seq = self.open.get(sequence_id)
            if seq is not None:
                seq.ended = True
                if not seq.busy:
                    self._drop(sequence_id, seq)

    def __len__(self) -> int:
        with self.lock:
            return len(self.open)

    def __contains__(self, sequence_id) -> bool:
        with self.lock:
            return sequence_id in self.open

    def active(self) -> int:
        """Open sequences, after dropping those idle past the timeout (a store that gets no more
        requests, like a model version being retired, still lets its sequences expire)."""
        with self.lock:
            self._expire(time.monotonic())
            return len(self.open)
