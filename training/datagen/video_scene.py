"""Video clips: real handwritten digits (scikit-learn's 8x8 scans) moving in noise among letters."""

from __future__ import annotations

import cv2
import numpy as np

from mmrt.training.datagen.config import VideoKnobs

LETTERS = "ACEFHKMNPRUVWXY"  # no letter that reads like a digit (O, I, S, Z, B, G, L, T)


class DigitBank:
    """scikit-learn's 1,797 handwritten digits, split so eval clips show unseen handwriting."""

    def __init__(self, seed: int, eval_share: float):
        from sklearn.datasets import load_digits

        digits = load_digits()
        order = np.random.default_rng([seed, 1797]).permutation(len(digits.target))
        n_eval = int(round(eval_share * len(order)))
        self.images = (digits.images / 16.0).astype(np.float32)  # [1797, 8, 8] in [0, 1]
        self.target = digits.target
        self._pools = {"eval": order[:n_eval], "fit": order[n_eval:]}

    def pick(self, digit: int, split: str, rng: np.random.Generator) -> np.ndarray:
        pool = self._pools["eval" if split == "eval" else "fit"]
        candidates = pool[self.target[pool] == digit]
        return self.images[candidates[int(rng.integers(len(candidates)))]]


def _trajectory(rng: np.random.Generator, t: int, size: int, obj: int) -> np.ndarray:
    """Top-left corners [t, 2] of an object moving at constant speed, bouncing off the edges."""
    span = size - obj
    pos = rng.uniform(0, span, 2)
    vel = rng.uniform(-3.0, 3.0, 2)
    out = np.empty((t, 2))
    for i in range(t):
        out[i] = pos
        pos = pos + vel
        for k in range(2):
            if not 0 <= pos[k] <= span:
                vel[k] = -vel[k]
                pos[k] = np.clip(pos[k], 0, span)
    return out.round().astype(int)


def make_video(rng: np.random.Generator, digits: list[int], bank: DigitBank, split: str,
               knobs: VideoKnobs) -> tuple[np.ndarray, dict]:
    """RGB frames uint8 [T, S, S, 3] showing the labelled digits (each may be missed)."""
    t, s = knobs.frames, knobs.size
    level = rng.uniform(30, 120)
    gradient = np.linspace(-1, 1, s, dtype=np.float32)[None, :] * rng.uniform(0, 30)
    frames = np.broadcast_to((level + gradient)[None, :, :, None], (t, s, s, 3)).copy()
    shown = []
    for d in digits:
        if rng.random() < knobs.miss:
            continue
        px = int(rng.integers(knobs.digit_px[0], knobs.digit_px[1] + 1))
        alpha = cv2.resize(bank.pick(d, split, rng), (px, px), interpolation=cv2.INTER_LINEAR)
        color = rng.uniform(150, 255, 3).astype(np.float32)
        path = _trajectory(rng, t, s, px)
        first = int(rng.integers(0, t // 2 + 1))  # visible for a window of at least half the clip
        last = int(rng.integers(first + t // 2, t + 1))
        for i in range(first, last):
            y, x = path[i]
            patch = frames[i, y:y + px, x:x + px]
            patch[:] = patch * (1 - alpha[..., None]) + color * alpha[..., None]
        shown.append(d)
    for _ in range(int(rng.integers(knobs.distractors[0], knobs.distractors[1] + 1))):
        letter = LETTERS[int(rng.integers(len(LETTERS)))]
        scale, thick = float(rng.uniform(0.4, 0.9)), int(rng.integers(1, 3))
        color = rng.uniform(120, 255, 3).astype(np.float32)
        for i, (y, x) in enumerate(_trajectory(rng, t, s, int(22 * scale))):
            mask = np.zeros((s, s), dtype=np.uint8)  # putText draws on 8-bit images only
            cv2.putText(mask, letter, (int(x), int(y + 22 * scale)), cv2.FONT_HERSHEY_SIMPLEX,
                        scale, 255, thick, cv2.LINE_AA)
            alpha = mask[..., None].astype(np.float32) / 255.0
            frames[i] = frames[i] * (1 - alpha) + color * alpha
    noise_std = float(rng.uniform(*knobs.noise_std))
    frames += rng.standard_normal(frames.shape, dtype=np.float32) * noise_std
    return np.clip(frames, 0, 255).astype(np.uint8), {"shown": shown, "noise_std": round(noise_std, 1)}


def write_mp4(path: str, frames: np.ndarray, fps: int) -> None:
    """Write RGB frames as an MPEG-4 Part 2 ('mp4v') file, which OpenCV encodes everywhere."""
    _, h, w, _ = frames.shape
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot open an mp4v writer for {path}")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
