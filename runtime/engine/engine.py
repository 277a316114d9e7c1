"""The inference engine, apart from any protocol: validate, preprocess, run only the encoders of
the modalities a request carries, fuse their embeddings (mean, paper Eq. 7), apply the head.
No grpc, no torch.

An encoder that fails at run time does not fail the request: the answer is fused from the
modalities left and ``Result.failed`` says what failed; only with none left is it an error.
Every request is checked against the server's ``Limits`` before any work, and a request whose
caller has left (``alive()`` false: cancelled, or past its deadline) stops before its encoders.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from mmrt.bundle import EMBEDDING, SCORES, WIRE, input_name
from mmrt.runtime.backends.loaded_bundle import Bundle
from mmrt.runtime.engine.batcher import BatchingOptions, EncoderRunner, always
from mmrt.runtime.engine.faults import with_faults
from mmrt.runtime.engine.inputs import Preprocessor
from mmrt.runtime.engine.limits import Limits
from mmrt.runtime.engine.ratelimit import RateLimitedLog
from mmrt.runtime.engine.sequences import SequenceLimits, SequenceStore
from mmrt.runtime.engine.status import InferError, Status, invalid, shown

log = logging.getLogger(__name__)
warn = RateLimitedLog(log)



# The smallest valid input of each modality: warm-up and the watchdog's check.
PROBES: dict[str, np.ndarray] = {
    "audio": np.zeros((1, 1600), np.float32), "video": np.zeros((1, 1, 32, 32, 3), np.uint8),
    "text": np.array([b"ok"], dtype=object)}


@dataclass(frozen=True)
class SequenceFlags:
    id: object
    start: bool = False
    end: bool = False


@dataclass
class Result:
    scores: np.ndarray  # [B, C] probabilities
    embedding: np.ndarray  # [B, d] the fused embedding the head received
    used: tuple[str, ...]  # modalities fused into this answer, in the bundle's order
    failed: dict[str, str] = field(default_factory=dict)  # modality -> why its encoder failed
    server_ns: int = 0


class Engine:
    def __init__(self, bundle: Bundle, batching: BatchingOptions | None = None, limits: Limits | None = None,
                 sequences: SequenceLimits | None = None, faults: Iterable[str] = (), observe=None,
                 delay_s: float = 0.0):
        self.bundle, self.manifest = bundle, bundle.manifest
        self.modalities = self.manifest.modalities
        self.batching = batching or BatchingOptions()
        self.limits = limits or Limits()
        row_bytes = 4 * self.manifest.embedding_dim * len(self.modalities)  # float32, every modality
        self.sequences = SequenceStore(sequences or SequenceLimits(), row_bytes)
        self.preprocess = Preprocessor(bundle.folder, self.manifest, bundle.tokenizer)
        graphs = with_faults(bundle.encoders, faults, delay_s)  # as they are unless a drill asks
        self.runners = {m: EncoderRunner(m, graphs[m], input_name(m), self.batching, observe)
                        for m in self.modalities}
        self.inputs = {input_name(m): m for m in self.modalities}

    def close(self) -> None:
        for runner in self.runners.values():
            runner.close()

    def warm(self) -> None:
        """Run every graph once (first runs allocate and tune), outside the statistics."""
        for m in self.modalities:
            self.bundle.encoders[m].run({input_name(m): self.preprocess(m, PROBES[m])})
        self.bundle.head.run({EMBEDDING: np.zeros((1, self.manifest.embedding_dim), np.float32)})

    def probe(self) -> None:
        """One smallest request through the whole engine (batchers included): the watchdog's
        heartbeat of the inference path. Raises if the engine cannot answer it."""
        m = min(self.modalities, key=("text", "audio", "video").index)
        self.infer({input_name(m): PROBES[m]})

    def parse(self, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Client tensors by input name -> modality -> array, checked against the wire contract."""
        if not tensors:
            raise invalid(f"no input: send at least one of {list(self.inputs)}")
        out, batch = {}, None
        for name, x in tensors.items():
            modality = self.inputs.get(name)
            if modality is None:
                raise invalid(f"unknown input {shown(name)} (this model takes {list(self.inputs)})")
            dtype, wire, ranks, what = WIRE[modality]
            if x.dtype != dtype:
                raise invalid(f"input {name!r}: expected datatype {wire} ({what})")
            if x.ndim not in ranks or (modality == "text" and x.ndim == 2 and x.shape[1] != 1):
                raise invalid(f"input {name!r}: shape {list(x.shape)}, expected {what}")
            if modality == "video" and x.shape[-1] != 3:
                raise invalid(f"input {name!r}: shape {list(x.shape)}, expected 3 colour channels last")
            if 0 in x.shape:
                raise invalid(f"input {name!r}: shape {list(x.shape)} is empty")
            if batch is not None and x.shape[0] != batch:
                raise invalid(f"input {name!r}: batch size {x.shape[0]}, other inputs have {batch}")
            batch = x.shape[0]
            self.limits.check(modality, name, x)
            out[modality] = x.reshape(-1) if modality == "text" else x
        return out

    def encode(self, raw: dict[str, np.ndarray], alive: Callable[[], bool] = always
               ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """Run the present modalities' encoders (batched across requests): embeddings and failures."""
        ready = {m: self.preprocess(m, x) for m, x in raw.items()}  # bad input fails the request
        gone(alive)
        # Every encoder but the first in the bundle's order (audio, the largest, where present) goes to
        # its batching thread; the first may run in this thread meanwhile (small graphs leave cores
        # idle, so encoders side by side finish sooner: 0.2-0.4 ms of 4.5 on the `small` bundle).
        first = next(m for m in self.modalities if m in ready)
        futures = {m: self.runners[m].submit(ready[m], alive, here=False) for m in ready if m != first}
        futures[first] = self.runners[first].submit(ready[first], alive)
        embeddings, failed = {}, {}
        for m, future in futures.items():
            try:
                embeddings[m] = future.result()
            except Exception as e:  # noqa: BLE001 - a failing encoder degrades the answer
                if isinstance(e, InferError) and e.status is Status.CANCELLED:
                    raise
                failed[m] = f"{type(e).__name__}: {e}"
                warn.warning(f"encoder:{m}", "%s encoder failed (%s); answering from the other modalities",
                             m, failed[m])
        return embeddings, failed

    def answer(self, embeddings: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        used = tuple(m for m in self.modalities if m in embeddings)
        fused = np.mean([embeddings[m] for m in used], axis=0).astype(np.float32)
        return self.bundle.head.run({EMBEDDING: fused})[SCORES], fused, used

    def infer(self, tensors: dict[str, np.ndarray], sequence: SequenceFlags | None = None,
              alive: Callable[[], bool] = always) -> Result:
        """Answer one request; ``alive()`` false (the caller left) stops it before its encoders."""
        start = time.perf_counter_ns()
        raw = self.parse(tensors)
        gone(alive)
        if sequence is None:
            embeddings, failed = self.encode(raw, alive)
        else:
            batch = len(next(iter(raw.values())))
            with self.sequences.turn(sequence.id, sequence.start, sequence.end, batch, alive) as turn:
                embeddings, failed = self.encode(raw, alive)
                embeddings = turn.apply(embeddings)
        if not embeddings:  # the details are in the server's log, not in the client's answer
            raise InferError(Status.INTERNAL, f"every encoder the request needed failed "
                             f"({', '.join(failed)})")
        scores, fused, used = self.answer(embeddings)
        return Result(scores, fused, used, failed, time.perf_counter_ns() - start)


def gone(alive: Callable[[], bool]) -> None:
    """Stop a request whose caller has left: its answer would go to nobody."""
    if not alive():
        raise InferError(Status.CANCELLED, "the client left (cancelled, or its deadline passed)")
