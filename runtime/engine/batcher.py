"""Dynamic batching per encoder, across requests whatever modality set each carries.

Triton's dynamic batcher only batches requests with the same inputs; here each encoder has
its own queue, so a request with audio+text and one with audio+video share the audio batch.
A batch closes when it holds ``max_batch`` rows or its first request has waited
``max_delay_s``; the encoder runs once and each request gets its rows back.

With no delay asked for, a request that finds its encoder idle and nobody queued runs in its own
thread at once: handing it to the batching thread and back cost about 0.1-0.2 ms a request on a
2-core machine and bought nothing, since there was nobody to batch with. Under load requests
queue while the encoder runs, and batches form as before.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from mmrt.bundle import EMBEDDING
from mmrt.knobs import knob
from mmrt.runtime.backends.graph import Graph
from mmrt.runtime.engine.limits import Limits
from mmrt.runtime.engine.status import InferError, Status


def always() -> bool:
    return True


@dataclass(frozen=True)
class BatchingOptions:
    enabled: bool = True  # --no-batching: each request's encoders on their own
    # Rows per encoder run (a request larger than this runs alone). Not a flag of its own: `mmrt
    # serve` sets it to what a request may carry (``Limits.max_batch``, --max-batch).
    max_batch: int = Limits.max_batch
    # How long the first request of a batch may wait for company. 0: take what is queued when the
    # encoder frees up (no added latency when idle; batches form under load while it runs).
    max_delay_s: float = knob(0.0, "--max-queue-delay-ms", 0, "how long a request may wait for an encoder "
                              "batch to fill (0: batch what is queued when the encoder frees up, adding no "
                              "latency when idle)", scale=0.001)


@dataclass
class EncoderStats:
    """Per-encoder counters for ModelStatistics and the metrics endpoint."""

    runs: int = 0
    rows: int = 0
    dropped: int = 0  # requests whose caller had left before their rows ran
    compute_ns: int = 0
    queue_ns: int = 0
    batch_sizes: dict = field(default_factory=dict)  # rows per run -> count

    def record(self, rows: int, compute_ns: int, queue_ns: int) -> None:
        self.runs += 1
        self.rows += rows
        self.compute_ns += compute_ns
        self.queue_ns += queue_ns
        self.batch_sizes[rows] = self.batch_sizes.get(rows, 0) + 1


@dataclass
class _Job:
    x: np.ndarray
    future: Future
    queued: int  # perf_counter_ns at submission
    alive: Callable[[], bool]  # False once nobody waits for the answer (cancelled, deadline passed)


class EncoderRunner:
    """Runs one encoder graph: batched by a worker thread, or directly in the caller's thread."""

    def __init__(self, modality: str, graph: Graph, input_name: str, options: BatchingOptions, observe=None):
        self.modality, self.graph, self.input_name, self.options = modality, graph, input_name, options
        self.stats = EncoderStats()
        self.observe = observe  # callback(modality, rows, compute_s, queue_s) for the metrics
        self.lock = threading.Lock()  # guards the stats
        self.running = threading.Lock()  # held while the graph runs (batching on: one run at a time)
        self.waiting = 0  # jobs queued or held by the batching thread, not yet running (under ``lock``)
        self.jobs: queue.Queue[_Job | None] = queue.Queue()
        self.worker = None
        if options.enabled:
            self.worker = threading.Thread(target=self._loop, name=f"batcher-{modality}", daemon=True)
            self.worker.start()

    def submit(self, x: np.ndarray, alive: Callable[[], bool] = always, here: bool = True) -> Future:
        """Future of the embeddings [b, d] of ``x`` [b, ...] (an encoder error becomes its exception).
        If ``alive()`` is false when its batch is formed, the rows never run (CANCELLED). ``here``:
        may run in the caller's thread if the encoder is idle (False: on the batching thread, so that
        the caller can run another encoder meanwhile)."""
        if self.worker is None:
            return self._now(x, alive)
        if (here and self.options.max_delay_s <= 0 and self.waiting == 0
                and self.running.acquire(blocking=False)):
            try:  # idle, nobody waiting to batch with: run here
                return self._now(x, alive)
            finally:
                self.running.release()
        future: Future = Future()
        with self.lock:  # counted before it is queued: no caller may run ahead of it from now on
            self.waiting += 1
        self.jobs.put(_Job(x, future, time.perf_counter_ns(), alive))
        return future

    def _now(self, x: np.ndarray, alive: Callable[[], bool]) -> Future:
        """Run ``x`` in the caller's thread; the outcome in a finished future."""
        future: Future = Future()
        job = _Job(x, future, time.perf_counter_ns(), alive)
        if self._still_wanted(job):
            try:
                future.set_result(self._run([x], job.queued)[0])
            except Exception as e:  # noqa: BLE001 - handed to the caller through the future
                future.set_exception(e)
        return future

    def close(self) -> None:
        if self.worker is not None:
            self.jobs.put(None)
            self.worker.join(timeout=5)

    def _run(self, xs: list[np.ndarray], queued: int) -> list[np.ndarray]:
        start = time.perf_counter_ns()
        batch = xs[0] if len(xs) == 1 else np.concatenate(xs)
        z = self.graph.run({self.input_name: batch})[EMBEDDING]
        done = time.perf_counter_ns()
        with self.lock:
            self.stats.record(len(batch), done - start, start - queued)
        if self.observe is not None:
            self.observe(self.modality, len(batch), (done - start) / 1e9, (start - queued) / 1e9)
        bounds = np.cumsum([len(x) for x in xs])[:-1]
        return np.split(z, bounds)

    def _collect(self, first: _Job) -> tuple[list[_Job], _Job | None]:
        """The jobs of one batch, starting with ``first``; also a job that did not fit, if any."""
        jobs, rows = [first], len(first.x)
        deadline = time.monotonic() + self.options.max_delay_s
        while rows < self.options.max_batch:
            remaining = deadline - time.monotonic()
            try:
                job = self.jobs.get(timeout=max(remaining, 0)) if remaining > 0 else self.jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self.jobs.put(None)  # let the loop see the stop after this batch
                break
            if rows + len(job.x) > self.options.max_batch:
                return jobs, job
            jobs.append(job)
            rows += len(job.x)
        return jobs, None

    def _still_wanted(self, job: _Job) -> bool:
        if not job.future.set_running_or_notify_cancel():
            return False
        if job.alive():
            return True
        with self.lock:
            self.stats.dropped += 1
        job.future.set_exception(InferError(Status.CANCELLED, "the client left before this encoder ran"))
        return False

    def _loop(self) -> None:
        carry: _Job | None = None
        while True:
            first = carry if carry is not None else self.jobs.get()
            if first is None:
                return
            with self.running:
                jobs, carry = self._collect(first)
                with self.lock:
                    self.waiting -= len(jobs)
                live = [j for j in jobs if self._still_wanted(j)]
                if not live:
                    continue
                try:
                    outputs = self._run([j.x for j in live], min(j.queued for j in live))
                except Exception as e:  # noqa: BLE001 - every request of the batch learns of it
                    for job in live:
                        job.future.set_exception(e)
                    continue
            for job, z in zip(live, outputs, strict=True):
                job.future.set_result(z)
