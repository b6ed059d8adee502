"""PCM conversions, resampling and WAV I/O (no models)."""

from __future__ import annotations

import numpy as np
import pytest

from personae.daemon.audio import (
    StreamResampler,
    float32_to_int16,
    float32_to_pcm16,
    pcm16_to_float32,
    read_wav,
    resample,
    to_wav_bytes,
)


def sine(freq: float, rate: int, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)])


def test_pcm16_round_trip_is_exact():
    pcm = np.array([-32768, -1, 0, 1, 12345, 32767], dtype="<i2").tobytes()
    x = pcm16_to_float32(pcm)
    assert x.dtype == np.float32
    assert x.min() == -1.0 and x.max() < 1.0
    assert float32_to_pcm16(x) == pcm


@pytest.mark.parametrize("data", [b"\x00", b"\x00\x01\x02", bytearray(5), memoryview(b"abc")])
def test_odd_length_pcm16_raises(data):
    with pytest.raises(ValueError, match="even number of bytes"):
        pcm16_to_float32(data)


def test_float_to_int16_clips_instead_of_wrapping():
    y = float32_to_int16(np.array([1.5, -1.5, 1.0, -1.0], dtype=np.float32))
    assert y.tolist() == [32767, -32768, 32767, -32768]


@pytest.mark.parametrize(("src", "dst"), [(48_000, 16_000), (16_000, 22_050), (22_050, 24_000)])
def test_resample_keeps_duration_and_frequency(src, dst):
    x = sine(440.0, src, seconds=2.0)
    y = resample(x, src, dst)
    assert y.dtype == np.float32
    assert abs(len(y) - 2.0 * dst) <= 2
    assert abs(peak_frequency(y, dst) - 440.0) < 1.0
    assert np.sqrt(np.mean(y**2)) == pytest.approx(np.sqrt(np.mean(x**2)), rel=0.02)


def test_resample_int16_keeps_dtype():
    x = float32_to_int16(sine(300.0, 22_050))
    y = resample(x, 22_050, 16_000)
    assert y.dtype == np.int16 and abs(len(y) - 16_000) <= 1


def test_stream_resampler_matches_whole_signal():
    """Chunked output, state carried, equals resampling the whole signal at once."""
    x = sine(1000.0, 48_000, seconds=1.0)
    stream = StreamResampler(48_000, 16_000)
    chunks = [stream.process(c) for c in np.array_split(x, 37)] + [stream.flush()]
    y = np.concatenate(chunks)
    assert abs(len(y) - 16_000) <= 1
    whole = resample(x, 48_000, 16_000)
    n = min(len(y), len(whole))
    assert np.max(np.abs(y[:n] - whole[:n])) < 1e-3
    assert abs(peak_frequency(y, 16_000) - 1000.0) < 1.5


def test_stream_resampler_same_rate_passes_through():
    s = StreamResampler(16_000, 16_000)
    x = sine(100.0, 16_000, 0.1)
    assert np.array_equal(s.process(x), x) and s.flush().size == 0


def test_wav_round_trip_from_bytes_and_path(tmp_path):
    pcm = float32_to_int16(sine(220.0, 22_050, 0.5))
    data = to_wav_bytes(pcm, 22_050)
    x, rate = read_wav(data)
    assert rate == 22_050 and np.array_equal(float32_to_int16(x), pcm)
    (tmp_path / "a.wav").write_bytes(data)
    y, _ = read_wav(tmp_path / "a.wav")
    assert np.array_equal(x, y)


def test_read_wav_tolerates_streamed_header():
    """espeak-ng --stdout claims ~2^31 frames and stops early; read what is there."""
    pcm = float32_to_int16(sine(220.0, 16_000, 0.25))
    data = bytearray(to_wav_bytes(pcm, 16_000))
    data[4:8] = (0x7FFFFFFF).to_bytes(4, "little")
    data[40:44] = (0x7FFFFFFE).to_bytes(4, "little")
    x, rate = read_wav(bytes(data) + b"\x01")  # and a stray odd byte
    assert rate == 16_000 and np.array_equal(float32_to_int16(x), pcm)


def test_to_wav_bytes_refuses_float():
    with pytest.raises(ValueError, match="int16"):
        to_wav_bytes(np.zeros(10, dtype=np.float32), 16_000)
