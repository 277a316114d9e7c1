"""Speech synthesis: the word bank behind the audio is the same on every run."""

import numpy as np
import pytest

from mmrt.training.datagen.speech import available_voices
from mmrt.training.datagen.speech_bank import SpeechBank, bank_path

pytestmark = pytest.mark.integration


def test_two_independent_banks_are_byte_identical(tmp_path):
    words = ["seven", "hello", "six"]
    a = bank_path(words, tmp_path / "a")
    b = bank_path(words, tmp_path / "b")
    assert a.read_bytes() == b.read_bytes()
    bank = SpeechBank(a)
    assert bank.voices == available_voices() and len(bank.voices) >= 90
    seven = bank.word("seven", bank.voices[0])
    assert len(seven) > bank.sample_rate // 4 and np.abs(seven).max() > 1000  # real speech


def test_unknown_variants_are_not_offered():
    assert all("+" in v for v in available_voices())
    assert not any(v.endswith(("+f2", "+f3", "+f5")) for v in available_voices())
