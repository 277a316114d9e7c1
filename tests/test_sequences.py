"""The sequence store under concurrent requests: turns in arrival order, state changed only by
requests that finish, memory reserved against a limit; and encoder batches skip callers that left."""

import threading
import time

import numpy as np
import pytest

from mmrt.runtime.engine.batcher import BatchingOptions, EncoderRunner
from mmrt.runtime.engine.sequences import SequenceLimits, SequenceStore
from mmrt.runtime.engine.status import InferError, Status

ROW = 16  # bytes one row of every modality holds


def store(**limits) -> SequenceStore:
    return SequenceStore(SequenceLimits(**limits), row_bytes=ROW)


def emb(value: float, batch: int = 1) -> dict:
    return {"audio": np.full((batch, 4), value)}


def test_a_request_waits_for_the_one_before_it_to_finish():
    s, order = store(), []
    with s.turn(1, start=True, end=False, batch=1) as first:
        def other_client_ends_it():
            with s.turn(1, start=False, end=True, batch=1) as turn:
                order.append("end starts")
                order.append(sorted(turn.apply({})))

        t = threading.Thread(target=other_client_ends_it)
        t.start()
        time.sleep(0.2)  # the second request has arrived and must wait: the first is mid-request
        order.append("first applies")
        first.apply(emb(1.0))
    t.join(5)
    assert order == ["first applies", "end starts", ["audio"]]  # it saw the first's embedding
    assert len(s) == 0


def test_without_sequence_start_a_sequence_is_never_created_or_revived():
    s = store()
    with pytest.raises(InferError, match="unknown or expired"):
        s.turn(7, start=False, end=False, batch=1)
    with s.turn(7, start=True, end=True, batch=1) as turn:
        turn.apply(emb(1.0))
    with pytest.raises(InferError, match="unknown or expired"):
        s.turn(7, start=False, end=False, batch=1)
    assert len(s) == 0


def test_a_request_queued_behind_the_end_is_refused_and_a_start_revives():
    s, results = store(), {}
    with s.turn(3, start=True, end=False, batch=1) as first:
        def late(key, start):
            try:
                with s.turn(3, start=start, end=False, batch=1) as turn:
                    results[key] = sorted(turn.apply(emb(2.0)))
            except InferError as e:
                results[key] = e.message

        def end():
            with s.turn(3, start=False, end=True, batch=1) as turn:
                turn.apply({})

        ender = threading.Thread(target=end)
        ender.start()
        time.sleep(0.1)
        waiters = [threading.Thread(target=late, args=("plain", False))]
        waiters[0].start()
        time.sleep(0.1)
        waiters.append(threading.Thread(target=late, args=("restart", True)))
        waiters[1].start()
        time.sleep(0.1)
        first.apply(emb(1.0))
    for t in (ender, *waiters):
        t.join(5)
    assert "ended by an earlier request" in results["plain"]
    assert results["restart"] == ["audio"] and len(s) == 1


def test_a_batch_size_change_is_refused_and_leaves_the_sequence_as_it_was():
    s = store()
    with s.turn(1, start=True, end=False, batch=2) as turn:
        turn.apply(emb(1.0, 2))
    with pytest.raises(InferError, match="batch size 3, the sequence started with 2") as info:
        s.turn(1, start=False, end=False, batch=3)
    assert info.value.status is Status.INVALID_ARGUMENT
    with s.turn(1, start=False, end=True, batch=2) as turn:
        assert turn.apply({})["audio"].shape == (2, 4)


def test_a_sequence_whose_first_request_fails_never_begins():
    s = store()
    with pytest.raises(ValueError):
        with s.turn(9, start=True, end=False, batch=1):
            raise ValueError("preprocessing refused the input")
    assert len(s) == 0 and s.reserved == 0


def test_sequence_memory_is_reserved_against_the_limit_and_given_back():
    s = store(max_mb=100 * ROW / (1 << 20))  # room for 100 rows
    with s.turn(1, start=True, end=False, batch=60) as turn:
        turn.apply({})
    with pytest.raises(InferError, match="--max-sequence-mb") as info:
        s.turn(2, start=True, end=False, batch=60)
    assert info.value.status is Status.RESOURCE_EXHAUSTED
    with s.turn(1, start=True, end=False, batch=10) as turn:  # a restart at a smaller batch gives room back
        turn.apply({})
    assert s.reserved == 10 * ROW
    with s.turn(2, start=True, end=False, batch=60) as turn:
        turn.apply({})


def test_a_caller_that_leaves_while_waiting_gives_up_its_turn():
    s, left = store(), threading.Event()
    with s.turn(1, start=True, end=False, batch=1) as first:
        errors = []

        def impatient():
            try:
                s.turn(1, start=False, end=False, batch=1, alive=lambda: not left.is_set())
            except InferError as e:
                errors.append(e.status)

        t = threading.Thread(target=impatient)
        t.start()
        left.set()
        t.join(5)
        first.apply(emb(1.0))
    assert errors == [Status.CANCELLED]
    with s.turn(1, start=False, end=True, batch=1) as turn:  # the turn after it is not stuck
        assert "audio" in turn.apply({})


class CountingGraph:
    def __init__(self):
        self.rows = 0

    def run(self, feeds):
        x = feeds["AUDIO"]
        self.rows += len(x)
        return {"EMBEDDING": np.zeros((len(x), 4), np.float32)}


def test_an_encoder_batch_skips_requests_whose_caller_left():
    graph = CountingGraph()
    runner = EncoderRunner("audio", graph, "AUDIO", BatchingOptions(enabled=True))
    try:
        gone = runner.submit(np.zeros((3, 8), np.float32), alive=lambda: False)
        kept = runner.submit(np.zeros((2, 8), np.float32))
        assert kept.result(5).shape == (2, 4)
        with pytest.raises(InferError) as info:
            gone.result(5)
        assert info.value.status is Status.CANCELLED
        assert graph.rows == 2 and runner.stats.dropped == 1
    finally:
        runner.close()
