"""File decoders for user data and the bundled dataset: wav/flac -> 16 kHz mono, mp4 -> RGB frames."""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np

from mmrt.errors import UserError


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Decode any soundfile format, mix down to mono, resample to ``sample_rate``: float32 [n]."""
    import soundfile as sf
    from scipy.signal import resample_poly

    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise UserError(f"{path}: cannot decode audio ({e}); expected wav or flac") from None
    if len(data) == 0:
        raise UserError(f"{path}: audio file holds no samples")
    mono = data.mean(axis=1)
    if sr != sample_rate:
        g = gcd(sr, sample_rate)
        mono = resample_poly(mono, sample_rate // g, sr // g)
    return mono.astype(np.float32)


def load_video(path: str | Path) -> np.ndarray:
    """Decode every frame of a video with OpenCV: uint8 [N, H, W, 3] in RGB order."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise UserError(f"{path}: OpenCV cannot open this video (expected an mp4 it can decode)")
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    if not frames:
        raise UserError(f"{path}: video holds no decodable frame")
    return np.stack(frames)
