"""What one request may ask of the server, checked before any work is done for it.

Every bound is a flag of ``mmrt serve``, declared with its field (``mmrt.knobs``), and is reported
in ModelConfig's parameters, so a client can read them. The message size limit bounds the bytes of
a request; these bound the work those bytes can cause (a 4 KB request must not pad a thousand rows
to a full clip).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace

import numpy as np

from mmrt.knobs import knob
from mmrt.preprocess import SAMPLE_RATE
from mmrt.runtime.engine.status import invalid, shown

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    max_batch: int = knob(32, "--max-batch", 1,
                          "rows per request, and per encoder batch across requests")
    max_audio_samples: int = knob(60 * SAMPLE_RATE, "--max-audio-s", 0.001,
                                  "seconds of audio per row (the centre is kept)", scale=SAMPLE_RATE)
    max_video_frames: int = knob(1024, "--max-video-frames", 1, "frames per row (sampled uniformly)")
    max_video_side: int = knob(4096, "--max-video-side", 1, "pixels on a frame's longer side")
    max_video_aspect: float = knob(16.0, "--max-video-aspect", 1, "a frame's long side over its short side")
    max_text_bytes: int = knob(4096, "--max-text-bytes", 1, "UTF-8 bytes per text row, before tokenizing")
    max_shm_mb: float = knob(64.0, "--max-shm-mb", 0,
                             "bytes one request's inputs may copy out of shared memory")

    def capped(self, rows: int | None, why: str) -> Limits:
        """These limits with at most ``rows`` rows a request (None: as they are), saying so."""
        if rows is None or self.max_batch <= rows:
            return self
        log.warning("--max-batch %d capped to %d: %s", self.max_batch, rows, why)
        return replace(self, max_batch=rows)

    def check_rows(self, name: str, rows: int) -> None:
        if rows > self.max_batch:
            raise invalid(f"input {shown(name)}: batch size {rows}, this server takes at most "
                          f"{self.max_batch} rows per request (its --max-batch)")

    def check(self, modality: str, name: str, x: np.ndarray) -> None:
        """Refuse ``x`` (already shaped as the wire contract says) if one row would cost too much."""
        self.check_rows(name, x.shape[0])
        getattr(self, f"_check_{modality}")(name, x)

    def _check_audio(self, name: str, x: np.ndarray) -> None:
        if x.shape[1] > self.max_audio_samples:
            raise invalid(f"input {name!r}: {x.shape[1]} samples per row, at most {self.max_audio_samples} "
                          f"(--max-audio-s {self.max_audio_samples / SAMPLE_RATE:g} at {SAMPLE_RATE} Hz)")

    def _check_video(self, name: str, x: np.ndarray) -> None:
        _, t, h, w, _ = x.shape
        if t > self.max_video_frames:
            raise invalid(f"input {name!r}: {t} frames per row, at most {self.max_video_frames} "
                          f"(--max-video-frames)")
        if max(h, w) > self.max_video_side:
            raise invalid(f"input {name!r}: frames of {h}x{w} pixels, at most {self.max_video_side} "
                          f"on a side (--max-video-side)")
        if max(h, w) / min(h, w) > self.max_video_aspect:
            raise invalid(f"input {name!r}: frames of {h}x{w} pixels, an aspect ratio over "
                          f"{self.max_video_aspect:g} (--max-video-aspect)")

    def _check_text(self, name: str, x: np.ndarray) -> None:
        for i, item in enumerate(x.reshape(-1)):
            if len(item) > self.max_text_bytes:
                raise invalid(f"input {name!r}: element {i} has {len(item)} bytes, at most "
                              f"{self.max_text_bytes} (--max-text-bytes)")

    def to_dict(self) -> dict:
        return asdict(self)
