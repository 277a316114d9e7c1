"""The per-encoder batcher on its own, with graphs that record where and how they ran."""

import threading

import numpy as np
import pytest

from mmrt.runtime.engine.batcher import BatchingOptions, EncoderRunner


class RecordingGraph:
    """Embeds each row as its first value; records the thread and batch of every run; ``hold``
    keeps a run going until ``release`` is set."""

    def __init__(self, hold: bool = False):
        self.runs: list[tuple[str, int]] = []
        self.started, self.release = threading.Event(), threading.Event()
        if not hold:
            self.release.set()

    def run(self, feeds):
        x = feeds["AUDIO"]
        self.runs.append((threading.current_thread().name, len(x)))
        self.started.set()
        self.release.wait(10)
        return {"EMBEDDING": x[:, :1].copy()}


def rows(*values):
    return np.array([[v, 0.0] for v in values], np.float32)


@pytest.fixture
def runner_with():
    made = []

    def make(graph, **options):
        runner = EncoderRunner("audio", graph, "AUDIO", BatchingOptions(**options))
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner.close()


def test_an_idle_encoder_runs_in_the_callers_thread(runner_with):
    graph = RecordingGraph()
    runner = runner_with(graph)
    assert runner.submit(rows(1, 2)).result(5).ravel().tolist() == [1, 2]
    assert graph.runs == [(threading.current_thread().name, 2)]


def test_asked_not_to_it_runs_on_the_batching_thread(runner_with):
    graph = RecordingGraph()
    runner = runner_with(graph)
    runner.submit(rows(1), here=False).result(5)
    assert graph.runs == [("batcher-audio", 1)]


def test_with_a_delay_asked_for_every_request_waits_for_company(runner_with):
    graph = RecordingGraph()
    runner = runner_with(graph, max_delay_s=0.001)
    runner.submit(rows(1)).result(5)
    assert graph.runs == [("batcher-audio", 1)]


def test_requests_that_arrive_while_it_runs_share_one_batch(runner_with):
    graph = RecordingGraph(hold=True)
    runner = runner_with(graph)
    first = threading.Thread(target=lambda: runner.submit(rows(0)).result(5), name="first-caller")
    first.start()
    assert graph.started.wait(5)  # the first request holds the encoder, in its own thread
    later = [runner.submit(rows(v)) for v in (1, 2, 3)]  # busy: these queue
    assert not any(f.done() for f in later)
    graph.release.set()
    first.join(5)
    assert [f.result(5).ravel().tolist() for f in later] == [[1], [2], [3]]  # each gets its own rows
    assert graph.runs == [("first-caller", 1), ("batcher-audio", 3)]


def test_a_batch_never_exceeds_max_batch_rows(runner_with):
    graph = RecordingGraph(hold=True)
    runner = runner_with(graph, max_batch=4)
    blocker = threading.Thread(target=lambda: runner.submit(rows(0)).result(5))
    blocker.start()
    assert graph.started.wait(5)
    queued = [runner.submit(rows(v, v)) for v in range(1, 6)]  # 10 rows, 2 a request
    graph.release.set()
    blocker.join(5)
    for v, f in enumerate(queued, 1):
        assert f.result(5).ravel().tolist() == [v, v]
    assert [n for _, n in graph.runs[1:]] == [4, 4, 2]


def test_an_encoder_error_reaches_every_request_of_the_batch(runner_with):
    class Broken:
        def run(self, feeds):
            raise RuntimeError("boom")

    runner = runner_with(Broken())
    for here in (True, False):
        with pytest.raises(RuntimeError, match="boom"):
            runner.submit(rows(1), here=here).result(5)
    assert runner.stats.runs == 0
