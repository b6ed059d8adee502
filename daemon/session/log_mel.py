"""Whisper's log-mel spectrogram in numpy, for models fed Whisper features (Smart Turn).

The same arithmetic as `transformers.WhisperFeatureExtractor` (80 slaney mel bands,
400-sample Hann window, hop 160, log10, clamped 8 below the peak, scaled to about
[-1, 1]); a test holds the two together. numpy alone, so end of turn needs neither
torch nor transformers.
"""

from __future__ import annotations

from functools import cache

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
N_MELS = 80


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    mel = 3.0 * f / 200.0
    log = f >= 1000.0
    return np.where(log, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) * 27.0 / np.log(6.4), mel)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    hz = 200.0 * m / 3.0
    return np.where(m >= 15.0, 1000.0 * np.exp(np.log(6.4) / 27.0 * (m - 15.0)), hz)


@cache
def mel_filters() -> np.ndarray:
    """(N_FFT // 2 + 1, N_MELS) triangular filters, slaney-normalised (equal area)."""
    fft_freqs = np.linspace(0, SAMPLE_RATE // 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2))
    width = np.diff(edges)
    slopes = edges[None, :] - fft_freqs[:, None]
    down = -slopes[:, :-2] / width[:-1]
    up = slopes[:, 2:] / width[1:]
    filters = np.maximum(0.0, np.minimum(down, up))
    return filters * (2.0 / (edges[2:] - edges[:-2]))[None, :]


@cache
def _window() -> np.ndarray:
    return np.hanning(N_FFT + 1)[:-1]  # periodic Hann


def log_mel(audio: np.ndarray, *, normalize: bool = True) -> np.ndarray:
    """(N_MELS, len(audio) // HOP) float32 features of 16 kHz mono float audio.

    `normalize` scales the waveform to zero mean and unit variance first (Smart Turn
    was trained that way).
    """
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim != 1 or x.size < N_FFT // 2 + 1:
        raise ValueError(f"expected 1-D audio of at least {N_FFT // 2 + 1} samples")
    if normalize:
        x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    x = np.pad(x, N_FFT // 2, mode="reflect")
    n_frames = 1 + (x.size - N_FFT) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP][:n_frames]
    power = np.abs(np.fft.rfft(frames * _window(), n=N_FFT, axis=1)) ** 2
    mel = mel_filters().T @ power.T  # (N_MELS, n_frames)
    spec = np.log10(np.maximum(mel, 1e-10))[:, :-1]
    spec = np.maximum(spec, spec.max() - 8.0)
    return ((spec + 4.0) / 4.0).astype(np.float32)
