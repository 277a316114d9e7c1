"""EncoderRunner with a fake graph, deterministically: the first run is held at a gate while
requests queue, so what each batch holds is known exactly."""

import threading

import numpy as np
import pytest

from mmrt.bundle import EMBEDDING
from mmrt.runtime.backends.graph import Graph
from mmrt.runtime.engine.batcher import BatchingOptions, EncoderRunner
from mmrt.runtime.engine.status import InferError, Status


class GatedGraph:
    """Doubles its input; the first run waits at a gate; runs listed in ``fail_runs`` raise."""

    kind, providers = "fake", ["test"]

    def __init__(self, fail_runs=()):
        self.entered, self.gate = threading.Event(), threading.Event()
        self.batches: list[np.ndarray] = []
        self.fail_runs = set(fail_runs)

    def run(self, feeds):
        x = feeds["AUDIO"]
        self.batches.append(x.copy())
        if len(self.batches) == 1:
            self.entered.set()
            assert self.gate.wait(10)
        if len(self.batches) - 1 in self.fail_runs:
            raise RuntimeError("device lost")
        return {EMBEDDING: 2 * x}


def rows(start: int, n: int) -> np.ndarray:
    return np.arange(start, start + n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)


@pytest.fixture
def runner_of():
    made = []

    def make(graph, max_batch=4):
        runner = EncoderRunner("audio", graph, "AUDIO", BatchingOptions(max_batch=max_batch))
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner.close()


def hold_first_run(runner: EncoderRunner, graph: GatedGraph):
    first = runner.submit(rows(100, 1), here=False)
    assert graph.entered.wait(10)
    return first


def test_the_fake_graph_is_a_graph():
    assert isinstance(GatedGraph(), Graph)


def test_queued_requests_form_full_batches_in_order_and_each_gets_its_own_rows(runner_of):
    graph = GatedGraph()
    runner = runner_of(graph, max_batch=4)
    first = hold_first_run(runner, graph)
    sizes = [1, 2, 1, 1, 3]
    starts = np.cumsum([0, *sizes[:-1]])
    futures = [runner.submit(rows(int(s), n)) for s, n in zip(starts, sizes, strict=True)]
    graph.gate.set()
    for (s, n), f in zip(zip(starts, sizes, strict=True), futures, strict=True):
        np.testing.assert_array_equal(f.result(10), 2 * rows(int(s), n))
    np.testing.assert_array_equal(first.result(10), 2 * rows(100, 1))
    # 1 (held) | 1 + 2 + 1 = 4, full | 1 + 3 = 4: batches close at max_batch, in arrival order
    assert [len(b) for b in graph.batches] == [1, 4, 4]
    np.testing.assert_array_equal(graph.batches[1][:, 0], [0, 1, 2, 3])
    assert runner.stats.runs == 3 and runner.stats.rows == 9 and runner.stats.batch_sizes == {1: 1, 4: 2}


def test_an_error_reaches_every_request_of_its_batch_and_the_runner_goes_on(runner_of):
    graph = GatedGraph(fail_runs={1})
    runner = runner_of(graph, max_batch=8)
    hold_first_run(runner, graph)
    futures = [runner.submit(rows(i, 1)) for i in range(3)]
    graph.gate.set()
    for f in futures:
        with pytest.raises(RuntimeError, match="device lost"):
            f.result(10)
    assert len(graph.batches[1]) == 3  # the three failed together, in one run
    np.testing.assert_array_equal(runner.submit(rows(7, 2)).result(10), 2 * rows(7, 2))


def test_a_request_whose_caller_left_never_runs_and_the_rest_of_its_batch_does(runner_of):
    graph = GatedGraph()
    runner = runner_of(graph, max_batch=8)
    hold_first_run(runner, graph)
    kept = runner.submit(rows(0, 1))
    gone = runner.submit(rows(50, 1), alive=lambda: False)
    also_kept = runner.submit(rows(1, 1))
    graph.gate.set()
    with pytest.raises(InferError) as e:
        gone.result(10)
    assert e.value.status == Status.CANCELLED
    np.testing.assert_array_equal(kept.result(10), 2 * rows(0, 1))
    np.testing.assert_array_equal(also_kept.result(10), 2 * rows(1, 1))
    np.testing.assert_array_equal(graph.batches[1][:, 0], [0, 1])  # row 50 never reached the graph
    assert runner.stats.dropped == 1


def test_an_idle_encoder_runs_in_the_callers_thread_without_batching(runner_of):
    seen = []

    class Recording:
        kind, providers = "fake", ["test"]

        def run(self, feeds):
            seen.append(threading.current_thread().name)
            return {EMBEDDING: feeds["AUDIO"]}

    runner = runner_of(Recording())
    runner.submit(rows(0, 1)).result(10)
    runner.submit(rows(0, 1), here=False).result(10)
    assert seen == [threading.current_thread().name, "batcher-audio"]
