"""The runtime's wire decoding and sequence store on their own (the server tests drive them end to end)."""

import re
import struct
import time

import numpy as np
import pytest

from mmrt.runtime.engine.sequences import SequenceLimits, SequenceStore
from mmrt.runtime.engine.status import InferError, Status
from mmrt.runtime.protocol import grpc_service_pb2 as pb
from mmrt.runtime.protocol.tensors import decode_inputs


def request_with(name, datatype, shape, raw=None, **contents):
    r = pb.ModelInferRequest(model_name="mmrt")
    t = r.inputs.add(name=name, datatype=datatype, shape=shape)
    for field, values in contents.items():
        getattr(t.contents, field).extend(values)
    if raw is not None:
        r.raw_input_contents.append(raw)
    return r


def bytes_wire(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(i)) + i for i in items)


def test_raw_and_typed_contents_decode_to_the_same_arrays():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    raw = decode_inputs(request_with("AUDIO", "FP32", [2, 3], raw=x.tobytes()))["AUDIO"]
    typed = decode_inputs(request_with("AUDIO", "FP32", [2, 3], fp32_contents=x.ravel().tolist()))["AUDIO"]
    np.testing.assert_array_equal(raw, x)
    np.testing.assert_array_equal(typed, x)
    text = decode_inputs(request_with("TEXT", "BYTES", [2], raw=bytes_wire(b"ab", b"")))["TEXT"]
    assert list(text) == [b"ab", b""]


@pytest.mark.parametrize("request_, expected", [
    (request_with("AUDIO", "FP32", [2, 3], raw=b"\0" * 20), "20 raw bytes, shape [2, 3] of FP32 needs 24"),
    (request_with("AUDIO", "FP32", [2, 3], fp32_contents=[1.0] * 5), "5 values in contents.fp32_contents"),
    (request_with("AUDIO", "FP32", [2, -3], raw=b""), "has a negative dimension"),
    (request_with("AUDIO", "FP32", [0, 1 << 40, 1 << 40], raw=b""), "is too large"),  # found by the fuzzer
    (request_with("AUDIO", "COMPLEX", [1], raw=b""), "unknown datatype 'COMPLEX'"),
    (request_with("TEXT", "BYTES", [2], raw=bytes_wire(b"ab")), "ends before element 1 of 2"),
    (request_with("TEXT", "BYTES", [1], raw=struct.pack("<I", 99) + b"x"), "claims 99 bytes"),
    (request_with("VIDEO", "UINT8", [1], uint_contents=[300]), "out of range for UINT8"),
    (request_with("AUDIO", "FP32", [], raw=b""), "no shape given"),
])
def test_malformed_tensors_are_refused_naming_the_input(request_, expected):
    with pytest.raises(InferError, match=re.escape(expected)) as info:
        decode_inputs(request_)
    assert info.value.status is Status.INVALID_ARGUMENT


def test_raw_contents_must_match_the_inputs_one_to_one():
    r = request_with("AUDIO", "FP32", [1], raw=b"\0" * 4)
    r.raw_input_contents.append(b"")
    with pytest.raises(InferError, match="2 entries for 1 inputs"):
        decode_inputs(r)


def test_sequences_expire_when_idle_and_free_their_slot():
    store = SequenceStore(SequenceLimits(max_sequences=1, idle_timeout_s=0.05), row_bytes=16)
    with store.turn(1, start=True, end=False, batch=1) as turn:
        turn.apply({"audio": np.ones((1, 4))})
    with pytest.raises(InferError) as full:
        store.turn(2, start=True, end=False, batch=1)
    assert full.value.status is Status.RESOURCE_EXHAUSTED
    time.sleep(0.1)
    with store.turn(2, start=True, end=False, batch=1) as turn:  # sequence 1 timed out
        turn.apply({})
    with pytest.raises(InferError, match="unknown or expired"):
        store.turn(1, start=False, end=False, batch=1)


def test_a_stopiteration_on_a_worker_becomes_an_error_not_a_hung_call():
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from mmrt.runtime.frontends.workers import on_worker

    def first_of(items):
        return next(iter(items))  # an empty request once did this: the call never answered

    async def call():
        with ThreadPoolExecutor(1) as pool:
            assert await on_worker(pool, first_of, [7]) == 7
            return await asyncio.wait_for(on_worker(pool, first_of, []), 10)

    with pytest.raises(RuntimeError, match="first_of raised StopIteration"):
        asyncio.run(call())


def test_malloc_is_tuned_unless_the_environment_says_otherwise():
    import os
    import subprocess
    import sys

    def took(env):
        code = "from mmrt.runtime.backends.memory import tune_malloc; print(','.join(tune_malloc()))"
        run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        return run.stdout.split()

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    assert took(env) == ["MALLOC_ARENA_MAX,MALLOC_MMAP_THRESHOLD_,MALLOC_TRIM_THRESHOLD_"]  # glibc here
    assert took({**env, "MALLOC_ARENA_MAX": "4"}) == ["MALLOC_MMAP_THRESHOLD_,MALLOC_TRIM_THRESHOLD_"]
