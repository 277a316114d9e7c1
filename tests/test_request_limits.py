"""What one request may cost the server: limits checked before any work, client strings cut
short in messages, and the crop that keeps video work proportional to the output."""

import logging
import re
import struct

import numpy as np
import pytest

from mmrt.preprocess import prepare_video, resize_center_crop
from mmrt.runtime.engine.limits import Limits
from mmrt.runtime.engine.ratelimit import RateLimitedLog
from mmrt.runtime.engine.status import InferError, Status, shown
from mmrt.runtime.protocol import grpc_service_pb2 as pb
from mmrt.runtime.protocol.tensors import decode_inputs

LIMITS = Limits(max_batch=4, max_audio_samples=100, max_video_frames=3, max_video_side=64,
                max_video_aspect=2.0, max_text_bytes=8)


@pytest.mark.parametrize("modality, x, expected", [
    ("audio", np.zeros((5, 10), np.float32), "batch size 5, this server takes at most 4 rows"),
    ("audio", np.zeros((1, 101), np.float32), "101 samples per row, at most 100"),
    ("video", np.zeros((1, 4, 8, 8, 3), np.uint8), "4 frames per row, at most 3"),
    ("video", np.zeros((1, 1, 65, 40, 3), np.uint8), "65x40 pixels, at most 64 on a side"),
    ("video", np.zeros((1, 1, 8, 17, 3), np.uint8), "an aspect ratio over 2"),
    ("text", np.array([b"short", b"123456789"], dtype=object), "element 1 has 9 bytes, at most 8"),
])
def test_each_limit_refuses_naming_itself(modality, x, expected):
    with pytest.raises(InferError, match=re.escape(expected)) as info:
        LIMITS.check(modality, modality.upper(), x)
    assert info.value.status is Status.INVALID_ARGUMENT


def test_rows_within_every_limit_pass():
    LIMITS.check("audio", "AUDIO", np.zeros((4, 100), np.float32))
    LIMITS.check("video", "VIDEO", np.zeros((4, 3, 64, 32, 3), np.uint8))
    LIMITS.check("text", "TEXT", np.array([b"12345678"] * 4, dtype=object))


def _request(name, datatype, shape, raw=b""):
    r = pb.ModelInferRequest(model_name="mmrt")
    r.inputs.add(name=name, datatype=datatype, shape=shape)
    r.raw_input_contents.append(raw)
    return r


def test_a_batch_past_the_limit_is_refused_before_its_bytes_are_decoded():
    many = 1_000_000  # a million empty strings: 4 MB of length prefixes, never walked
    with pytest.raises(InferError, match="batch size 1000000, this server takes at most 4 rows"):
        decode_inputs(_request("TEXT", "BYTES", [many], b"\0" * 4 * many), LIMITS)
    with pytest.raises(InferError, match="1000000 BYTES elements, at most 4"):
        decode_inputs(_request("TEXT", "BYTES", [1, many], b"\0" * 4 * many), LIMITS)


def test_a_rank_numpy_cannot_hold_is_invalid_argument_not_a_crash():
    with pytest.raises(InferError, match="65 dimensions, at most 8") as info:
        decode_inputs(_request("AUDIO", "FP32", [1] * 65, struct.pack("<f", 0.0)))
    assert info.value.status is Status.INVALID_ARGUMENT


def test_long_client_strings_are_cut_in_messages():
    name = "N" * 200_000
    with pytest.raises(InferError) as info:
        decode_inputs(_request(name, "COMPLEX", [1]))
    assert len(info.value.message) < 300 and "200002 chars" in info.value.message
    assert shown("short") == "'short'"


def test_wide_frames_are_cropped_to_their_centred_square_before_resizing():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 40, 200, 3), dtype=np.uint8)
    centre = frames[:, :, 80:120]  # the centred 40x40 square
    np.testing.assert_array_equal(resize_center_crop(frames, 20), resize_center_crop(centre, 20))
    assert resize_center_crop(frames[:, :, :40], 20).shape == (2, 20, 20, 3)


def test_repeated_warnings_are_rate_limited_with_a_count(caplog):
    log = RateLimitedLog(logging.getLogger("mmrt.test"), interval_s=60)
    with caplog.at_level(logging.WARNING, logger="mmrt.test"):
        logged = [log.warning("k", "bad thing %d", i) for i in range(100)]
        log.warning("other", "another thing")
    assert logged == [True] + [False] * 99
    assert [r.getMessage() for r in caplog.records] == ["bad thing 0", "another thing"]
    log.interval_s = 0
    with caplog.at_level(logging.WARNING, logger="mmrt.test"):
        log.warning("k", "bad thing again")
    assert "99 more like it" in caplog.records[-1].getMessage()


def test_a_frame_sampled_many_times_is_resized_once_and_large_squares_are_thinned_first(monkeypatch):
    import cv2

    calls = []
    resize = cv2.resize
    monkeypatch.setattr(cv2, "resize", lambda x, *a, **k: calls.append(x.shape) or resize(x, *a, **k))
    blocks = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    big = np.repeat(np.repeat(blocks, 64, axis=0), 64, axis=1)[None]  # a 1024x1024 frame of 64x64 blocks
    out = prepare_video(big, 8, 16)  # one frame, eight samples of it
    assert len(calls) == 1 and calls[0][0] <= 4 * 2 * 16  # resized once, from a thinned square
    np.testing.assert_array_equal(out, np.broadcast_to(blocks, (8, 16, 16, 3)))  # each block, exactly
