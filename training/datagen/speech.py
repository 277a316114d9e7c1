"""Speech synthesis with espeak-ng, driven through ctypes from the espeakng-loader wheel.

The wheel ships libespeak-ng and its voice data, so no system package is needed.
espeak-ng keeps global state, and an utterance depends on the ones before it (its
length varies by tens of samples), so the generator never calls this directly: it
reads a word bank that one fresh process synthesizes in a fixed order (speech_bank.py).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from mmrt.errors import UserError

# espeak_AUDIO_OUTPUT and espeak_PARAMETER values from speak_lib.h
AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_RATE, ESPEAK_PITCH, ESPEAK_RANGE = 1, 3, 4
ESPEAK_CHARS_UTF8 = 1

ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan")
# f2, f3 and f5 are left out: their breath noise differs from run to run even in a fresh
# process, which would break "same seed -> same data" (measured over the whole word bank).
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f4",
            "klatt", "klatt2", "klatt3", "croak", "Alex", "Andy", "belinda", "grandpa", "norbert")

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                   ctypes.c_void_p)


def _loader():
    try:
        import espeakng_loader
    except ImportError:
        raise UserError("speech synthesis needs the 'espeakng-loader' package "
                        "(the train extra: pip install \".[train]\" from a checkout)") from None
    return espeakng_loader


def available_voices() -> list[str]:
    """accent+variant names, keeping only variants the wheel ships (espeak accepts unknown
    variant names silently and speaks with the default voice)."""
    espeakng_loader = _loader()
    shipped = {p.name for p in (Path(espeakng_loader.get_data_path()) / "voices" / "!v").iterdir()}
    return [f"{a}+{v}" for a in ACCENTS for v in VARIANTS if v in shipped]


class Speaker:
    """Text -> int16 waveform at espeak's native rate (``self.sample_rate``, 22,050 Hz)."""

    def __init__(self) -> None:
        espeakng_loader = _loader()
        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data = espeakng_loader.get_data_path()
        self.sample_rate = self._lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode(), 0)
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({self.sample_rate}) with data at {data}")
        self._chunks: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # keep a reference: C holds the pointer
        self._lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, num_samples: int, events) -> int:
        if num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0  # 0 = continue synthesis

    def say(self, text: str, voice: str, rate: int = 160, pitch: int = 50) -> np.ndarray:
        """Synthesize ``text``; rate in words a minute (80-450), pitch 0-100."""
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"espeak-ng has no voice {voice!r}")
        self._lib.espeak_SetParameter(ESPEAK_RATE, int(rate), 0)
        self._lib.espeak_SetParameter(ESPEAK_PITCH, int(pitch), 0)
        self._chunks = []
        data = text.encode("utf-8")
        status = self._lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, ESPEAK_CHARS_UTF8, None, None)
        self._lib.espeak_Synchronize()
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed ({status}) for {text!r}")
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)
