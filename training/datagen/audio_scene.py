"""Audio clips: spoken digit words in noise, with babble from non-digit words."""

from __future__ import annotations

import numpy as np
from scipy.signal import resample, resample_poly

from mmrt.preprocess import SAMPLE_RATE
from mmrt.training.datagen.config import DIGITS, AudioKnobs
from mmrt.training.datagen.speech_bank import SpeechBank

# Babble words: none sounds like a digit ("for", "to", "won", "ate" would).
BABBLE = ("hello", "camera", "water", "table", "green", "morning", "yes", "stop", "window",
          "coffee", "music", "orange", "happy", "garden", "yellow", "river", "pencil", "basket")
WORD_RMS = 0.1  # every word is scaled to this RMS before mixing, so SNR means the same everywhere


def _word(bank: SpeechBank, text: str, voice: str, rng: np.random.Generator) -> np.ndarray:
    """One word at 16 kHz, sped up or slowed down (tempo and pitch together) by up to ~25%."""
    raw = bank.word(text, voice).astype(np.float32) / 32768.0
    wave = resample_poly(raw, SAMPLE_RATE, bank.sample_rate)
    speed = rng.uniform(0.8, 1.25)
    wave = resample(wave, max(1, round(len(wave) / speed)))
    rms = float(np.sqrt(np.mean(wave**2))) if len(wave) else 0.0
    return (wave * (WORD_RMS / rms)).astype(np.float32) if rms > 0 else wave.astype(np.float32)


def _place(track: np.ndarray, word: np.ndarray, rng: np.random.Generator) -> None:
    word = word[: len(track)]
    start = int(rng.integers(0, len(track) - len(word) + 1))
    track[start:start + len(word)] += word


def _noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Stationary noise between white and brown, at unit RMS."""
    white = rng.standard_normal(n).astype(np.float32)
    brown = np.cumsum(rng.standard_normal(n)).astype(np.float32)
    brown -= np.linspace(brown[0], brown[-1], n, dtype=np.float32)  # remove drift
    mix = rng.uniform(0, 1)
    noise = mix * white / white.std() + (1 - mix) * brown / (brown.std() + 1e-8)
    return noise / (noise.std() + 1e-8)


def make_audio(rng: np.random.Generator, digits: list[int], bank: SpeechBank,
               knobs: AudioKnobs) -> tuple[np.ndarray, dict]:
    """A clip of ``knobs.clip_seconds`` at 16 kHz holding the spoken digits (float32 in [-1, 1])."""
    n = int(round(knobs.clip_seconds * SAMPLE_RATE))
    track = np.zeros(n, dtype=np.float32)
    used_voices, spoken = [], []
    for d in digits:
        if rng.random() < knobs.miss:
            continue
        voice = bank.voices[int(rng.integers(len(bank.voices)))]
        _place(track, _word(bank, DIGITS[d], voice, rng), rng)
        used_voices.append(voice)
        spoken.append(d)
    snr = float(rng.uniform(*knobs.snr_db))
    track += _noise(n, rng) * WORD_RMS / 10 ** (snr / 20)
    for _ in range(int(rng.integers(knobs.babble_words[0], knobs.babble_words[1] + 1))):
        voice = bank.voices[int(rng.integers(len(bank.voices)))]
        word = BABBLE[int(rng.integers(len(BABBLE)))]
        _place(track, _word(bank, word, voice, rng) * 10 ** (rng.uniform(*knobs.babble_db) / 20), rng)
    track *= rng.uniform(0.3, 1.0) * 0.9 / max(float(np.abs(track).max()), 1e-6)
    return track, {"snr_db": round(snr, 2), "voices": used_voices, "spoken": spoken}
