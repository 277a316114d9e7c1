"""Decoders on foreign formats, and the content-keyed cache."""

import cv2
import numpy as np
import pytest
import soundfile as sf

from mmrt.decode import load_audio, load_video
from mmrt.errors import UserError
from mmrt.preprocess import fit_length, prepare_video, sample_frame_indices
from mmrt.training.data.cache import DecodeCache


def test_stereo_44k_flac_becomes_16k_mono_with_the_same_pitch(tmp_path):
    sr, f0 = 44_100, 440.0
    t = np.arange(sr) / sr
    sine = 0.5 * np.sin(2 * np.pi * f0 * t)
    path = tmp_path / "tone.flac"
    sf.write(path, np.stack([sine, sine], axis=1), sr)
    wave = load_audio(path, 16_000)
    assert wave.dtype == np.float32 and wave.shape == (16_000,)
    peak_hz = np.argmax(np.abs(np.fft.rfft(wave))) * 16_000 / len(wave)
    assert abs(peak_hz - f0) < 2


def test_video_decode_sample_and_resize(tmp_path):
    path = str(tmp_path / "clip.mp4")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (80, 48))
    for i in range(30):
        frame = np.zeros((48, 80, 3), np.uint8)
        frame[:, :, 2] = 8 * i  # red channel (BGR order) encodes the frame index
        writer.write(frame)
    writer.release()
    frames = load_video(path)
    assert frames.shape == (30, 48, 80, 3)
    assert frames[29, :, :, 0].mean() > frames[0, :, :, 0].mean() + 100  # RGB order, time order
    assert prepare_video(frames, 8, 32).shape == (8, 32, 32, 3)
    assert sample_frame_indices(30, 3).tolist() == [5, 15, 25]


def test_undecodable_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(UserError, match="bad.wav: cannot decode audio"):
        load_audio(bad, 16_000)
    with pytest.raises(UserError, match="bad.wav"):
        load_video(bad)


def test_fit_length_crops_centre_and_pads_end():
    assert fit_length(np.arange(10), 4).tolist() == [3, 4, 5, 6]
    assert fit_length(np.ones(2), 4).tolist() == [1, 1, 0, 0]


def test_cache_hits_skip_decoding_and_content_or_params_change_the_key(tmp_path):
    src = tmp_path / "x.bin"
    src.write_bytes(b"one")
    calls = []

    def decode():
        calls.append(1)
        return np.arange(len(calls) + 2)

    cache = DecodeCache(tmp_path / "cache")
    first = cache.get("audio", str(src), {"n": 1}, decode)
    again = DecodeCache(tmp_path / "cache").get("audio", str(src), {"n": 1}, decode)  # new run
    assert len(calls) == 1 and np.array_equal(first, again)
    cache.get("audio", str(src), {"n": 2}, decode)
    assert len(calls) == 2
    src.write_bytes(b"two, edited")
    cache.get("audio", str(src), {"n": 1}, decode)
    assert len(calls) == 3


def test_corrupt_cache_entry_is_decoded_again(tmp_path):
    src = tmp_path / "x.bin"
    src.write_bytes(b"one")
    cache = DecodeCache(tmp_path / "cache")
    cache.get("video", str(src), {}, lambda: np.ones(3))
    [entry] = (tmp_path / "cache").rglob("*.npy")
    entry.write_bytes(b"garbage")
    assert DecodeCache(tmp_path / "cache").get("video", str(src), {}, lambda: np.zeros(3)).sum() == 0
