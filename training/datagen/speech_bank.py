"""Every word in every voice, synthesized once in a fixed order by a fresh process.

espeak-ng's output depends on what it synthesized before, so per-example synthesis
would make the data depend on worker scheduling. A bank made in one fixed order by a
fresh interpreter is the same on every run; it is cached on disk by content key.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from mmrt import atomic

BANK_FORMAT = 1
RATE_WPM, PITCH = 175, 50  # synthesis settings; speed and pitch vary later by resampling


def _bank_key(words: list[str], voices: list[str]) -> str:
    from importlib.metadata import version

    blob = json.dumps([BANK_FORMAT, version("espeakng-loader"), words, voices, RATE_WPM, PITCH])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class SpeechBank:
    """int16 utterances at espeak's native rate, looked up by (word, voice)."""

    def __init__(self, path: str | Path):
        with np.load(path, allow_pickle=False) as z:
            self.sample_rate = int(z["sample_rate"])
            self.voices = [str(v) for v in z["voices"]]
            words = [str(w) for w in z["words"]]
            offsets, samples = z["offsets"], z["samples"]
        keys = [(w, v) for v in self.voices for w in words]
        self._words = {k: samples[offsets[i]:offsets[i + 1]] for i, k in enumerate(keys)}

    def word(self, word: str, voice: str) -> np.ndarray:
        return self._words[(word, voice)]


def bank_path(words: list[str], cache_dir: str | Path) -> Path:
    """Path of the cached bank for ``words`` in every available voice, synthesizing it if needed.

    Synthesis runs in a child interpreter, so this process never touches espeak's state.
    """
    from mmrt.training.datagen.speech import available_voices

    path = Path(cache_dir) / f"speech-bank-{_bank_key(words, available_voices())}.npz"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        child = subprocess.run([sys.executable, "-m", __name__, str(path), json.dumps(words)],
                               capture_output=True, text=True)
        if child.returncode != 0:
            last = (child.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"espeak-ng speech synthesis failed (exit {child.returncode}): {last}")
    return path


def _synthesize(out: Path, words: list[str]) -> None:
    from mmrt.training.datagen.speech import Speaker, available_voices

    speaker = Speaker()
    voices = available_voices()
    chunks = [speaker.say(w, v, RATE_WPM, PITCH) for v in voices for w in words]
    offsets = np.cumsum([0] + [len(c) for c in chunks])
    buf = io.BytesIO()
    np.savez(buf, sample_rate=speaker.sample_rate, voices=np.array(voices), words=np.array(words),
             offsets=offsets, samples=np.concatenate(chunks).astype(np.int16))
    atomic.write_bytes(out, buf.getvalue())


if __name__ == "__main__":
    _synthesize(Path(sys.argv[1]), json.loads(sys.argv[2]))
