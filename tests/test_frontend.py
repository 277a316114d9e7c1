"""The conv log-mel front-end against an FFT reference (and torchaudio where it imports)."""

import numpy as np
import pytest
import torch

from mmrt.training.data.frontend import LogMel, MelParams, mel_filterbank


def reference_logmel(wave: np.ndarray, p: MelParams) -> np.ndarray:
    """np.fft over framed, windowed signal, as torch.stft(center=False) frames it."""
    n = np.arange(p.win_length)
    window = 0.54 - 0.46 * np.cos(2 * np.pi * n / p.win_length)  # periodic Hamming
    pad = (p.n_fft - p.win_length) // 2
    full = np.zeros(p.n_fft)
    full[pad:pad + p.win_length] = window
    frames = np.stack([wave[t * p.hop_length: t * p.hop_length + p.n_fft]
                       for t in range(p.num_frames(len(wave)))])
    power = np.abs(np.fft.rfft(frames * full, n=p.n_fft)) ** 2  # [T, F]
    return np.log(power @ mel_filterbank(p) + p.log_floor).T  # [n_mels, T]


@pytest.mark.parametrize("hop", [160, 161])  # framing by strided slices, and by a gather (gcd 1)
def test_matches_fft_reference_on_speech_like_audio(hop):
    p = MelParams(hop_length=hop)
    rng = np.random.default_rng(0)
    t = np.arange(16_000) / 16_000
    wave = (0.3 * np.sin(2 * np.pi * 300 * t) * (1 + np.sin(2 * np.pi * 3 * t))
            + 0.05 * rng.standard_normal(len(t)))
    ours = LogMel(p)(torch.from_numpy(wave).float()[None])[0].numpy()
    ref = reference_logmel(wave, p)
    assert ours.shape == ref.shape == (128, p.num_frames(16_000))
    bands = ref.max(axis=1) > np.log(p.log_floor) + 1  # skip filters narrower than one FFT bin
    np.testing.assert_allclose(ours[bands], ref[bands], atol=2e-3, rtol=1e-3)


def test_filterbank_is_triangular_and_covers_the_band():
    fb = mel_filterbank(MelParams(n_mels=40))
    assert fb.shape == (257, 40) and fb.min() >= 0 and fb.max() <= 1
    assert (fb.sum(axis=0) > 0).all()  # with 40 bands at n_fft 512 no filter is empty


def test_batch_is_independent():
    x = torch.randn(3, 8_000)
    mel = LogMel()
    torch.testing.assert_close(mel(x)[1:2], mel(x[1:2]), atol=1e-4, rtol=1e-4)


def test_too_short_audio_is_refused_clearly():
    with pytest.raises(ValueError, match="at least n_fft=512 samples, got 100"):
        LogMel()(torch.zeros(1, 100))


def test_agrees_with_torchaudio_mel_spectrogram():
    torchaudio = pytest.importorskip("torchaudio")
    p = MelParams()
    x = torch.randn(2, 16_000)
    ta = torchaudio.transforms.MelSpectrogram(
        sample_rate=p.sample_rate, n_fft=p.n_fft, win_length=p.win_length, hop_length=p.hop_length,
        f_min=p.f_min, f_max=p.f_max, n_mels=p.n_mels, window_fn=torch.hamming_window,
        center=False, power=2.0, norm=None, mel_scale="htk")(x)
    torch.testing.assert_close(LogMel(p)(x), torch.log(ta + p.log_floor), atol=2e-3, rtol=1e-3)
