"""The rig case for `mmrt bench --streaming`: each example's modalities sent one by one on a
sequence (ModelStreamInfer, Triton's sequence flags), the next as soon as the previous answer
arrives. Times are from the sequence's first send: to the first answer and to the final one."""

from __future__ import annotations

import itertools
import queue
import threading
import time

from tqdm import tqdm

from mmrt.benchmarks.client import Record, triton_inputs
from mmrt.benchmarks.workload import Example, key
from mmrt.bundle import SCORES

ANSWER_TIMEOUT_S = 60.0


def stream_examples(url: str, model: str, examples: list[Example], carried: list[tuple[str, ...]],
                    modalities, concurrency: int, progress: bool) -> tuple[list[Record], float]:
    import tritonclient.grpc as tc

    jobs = queue.Queue()
    for ex, c in zip(examples, carried, strict=True):
        if c:
            jobs.put((ex, c))
    total = jobs.qsize()
    ids = itertools.count(1)
    records: list[Record] = []
    lock = threading.Lock()
    bar = tqdm(total=total, desc="stream", unit="seq", disable=not progress, leave=False)

    def worker() -> None:
        client = tc.InferenceServerClient(url)
        answers: queue.Queue = queue.Queue()
        client.start_stream(callback=lambda result, error: answers.put((result, error)))
        try:
            while True:
                try:
                    ex, c = jobs.get_nowait()
                except queue.Empty:
                    return
                mine = one_sequence(client, answers, model, next(ids), ex, c, modalities, concurrency)
                with lock:
                    records.extend(mine)
                bar.update(1)
        finally:
            client.stop_stream()

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bar.close()
    return records, time.perf_counter() - start


def one_sequence(client, answers: queue.Queue, model: str, sequence_id: int, ex: Example,
                 carried: tuple[str, ...], modalities, concurrency: int) -> list[Record]:
    out = []
    t0 = time.perf_counter()
    for i, m in enumerate(carried):
        sent = carried[: i + 1]
        client.async_stream_infer(model, triton_inputs(ex.inputs, [m]), sequence_id=sequence_id,
                                  sequence_start=i == 0, sequence_end=i == len(carried) - 1)
        try:
            result, error = answers.get(timeout=ANSWER_TIMEOUT_S)
        except queue.Empty:
            result, error = None, "no answer within the timeout"
        elapsed = 1000 * (time.perf_counter() - t0)
        if error is not None:
            out.append(Record(ex.id, key(sent, modalities), concurrency, elapsed, 0.0, False, str(error),
                              step=i + 1))
            break
        server_ms = result.get_response().parameters["server_time_ns"].int64_param / 1e6
        out.append(Record(ex.id, key(sent, modalities), concurrency, elapsed, server_ms, True,
                          scores=result.as_numpy(SCORES)[0], step=i + 1))
    if out and out[-1].ok and len(out) == len(carried):
        last = out[-1]
        out.append(Record(last.example, last.subset, concurrency, last.client_ms, last.server_ms, True,
                          scores=last.scores, step=-1))
    return out
