"""PCM helpers shared by the session and the engines.

Conventions (see engines/base.py): float32 in [-1, 1] for analysis (VAD, STT), int16
for audio that leaves the daemon. Wire audio is PCM16 little-endian mono.
"""

from __future__ import annotations

import io
import os
import wave
from pathlib import Path

import numpy as np
import soxr

#: soxr "high quality": transparent for speech at a fraction of VHQ's cost
RESAMPLE_QUALITY = "HQ"

_INT16_SCALE = 32768.0


def pcm16_to_float32(data: bytes | bytearray | memoryview) -> np.ndarray:
    """PCM16 little-endian bytes -> float32 in [-1, 1)."""
    n = len(data) if not isinstance(data, memoryview) else data.nbytes
    if n % 2:
        raise ValueError(f"PCM16 audio must be an even number of bytes, got {n}")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / _INT16_SCALE


def float32_to_int16(x: np.ndarray) -> np.ndarray:
    """float32 in [-1, 1] -> int16, clipped (resampling can overshoot full scale)."""
    y = np.clip(np.asarray(x, dtype=np.float32) * _INT16_SCALE, -32768.0, 32767.0)
    return np.round(y).astype(np.int16)


def int16_to_float32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.int16).astype(np.float32) / _INT16_SCALE


def float32_to_pcm16(x: np.ndarray) -> bytes:
    return float32_to_int16(x).astype("<i2").tobytes()


def resample(x: np.ndarray, src_rate: float, dst_rate: float) -> np.ndarray:
    """Resample a whole mono signal; keeps the dtype (float32 or int16)."""
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"expected mono audio (1-D), got shape {x.shape}")
    if src_rate == dst_rate or x.size == 0:
        return x.copy()
    return soxr.resample(x, src_rate, dst_rate, quality=RESAMPLE_QUALITY)


class StreamResampler:
    """Resample a chunked mono stream; the filter state carries across chunks.

    Resampling chunks one by one with `resample` would restart the filter at every
    chunk boundary (clicks, and a few samples lost or gained each time).
    """

    def __init__(self, src_rate: float, dst_rate: float, *, dtype: str = "float32") -> None:
        self.src_rate = src_rate
        self.dst_rate = dst_rate
        self._dtype = np.dtype(dtype)
        self._passthrough = src_rate == dst_rate
        self._stream = (
            None
            if self._passthrough
            else soxr.ResampleStream(src_rate, dst_rate, 1, dtype=dtype, quality=RESAMPLE_QUALITY)
        )

    def process(self, chunk: np.ndarray, *, last: bool = False) -> np.ndarray:
        """Resample the next chunk; `last=True` flushes what the filter still holds."""
        chunk = np.asarray(chunk, dtype=self._dtype)
        if chunk.ndim != 1:
            raise ValueError(f"expected mono audio (1-D), got shape {chunk.shape}")
        if self._stream is None:
            return chunk.copy()
        return self._stream.resample_chunk(chunk, last=last)

    def flush(self) -> np.ndarray:
        """End of stream: the remaining output (the filter's delay)."""
        return self.process(np.zeros(0, dtype=self._dtype), last=True)

    def reset(self) -> None:
        if self._stream is not None:
            self._stream.clear()


def to_wav_bytes(pcm: np.ndarray, rate: int) -> bytes:
    """A mono 16-bit WAV file in memory."""
    pcm = np.asarray(pcm)
    if pcm.dtype != np.int16:
        raise ValueError(f"to_wav_bytes expects int16 samples, got {pcm.dtype}")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(rate))
        w.writeframes(pcm.astype("<i2").tobytes())
    return buf.getvalue()


def read_wav(source: str | os.PathLike[str] | bytes) -> tuple[np.ndarray, int]:
    """Read a PCM WAV (8, 16 or 32-bit; channels averaged) -> (float32 mono, rate).

    Tolerates streamed WAVs whose header claims more frames than follow (what
    `espeak-ng --stdout` writes): whatever is present is read.
    """
    fileobj = io.BytesIO(source) if isinstance(source, bytes) else Path(source).open("rb")
    with fileobj, wave.open(fileobj, "rb") as w:
        channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
        raw = w.readframes(w.getnframes())
    frame = channels * width
    raw = raw[: len(raw) - len(raw) % frame]
    if width == 1:  # 8-bit WAV is unsigned
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / _INT16_SCALE
    elif width == 4:
        x = (np.frombuffer(raw, dtype="<i4").astype(np.float64) / 2**31).astype(np.float32)
    else:
        raise ValueError(f"unsupported WAV sample width: {width * 8} bits")
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return x, rate
