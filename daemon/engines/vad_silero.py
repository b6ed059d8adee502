"""Silero VAD (v6) on onnxruntime, one frame at a time.

Uses the ONNX file faster-whisper ships (already a daemon dependency, so no torch and
no extra package). Its inputs are `input` (n, 64 + 512), `h` and `c` (1, 1, 128): the
LSTM runs over the n rows in order, so a stream feeds one row per frame and carries
`h`, `c` and the last 64 samples of the previous frame, as silero's OnnxWrapper does.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort

from personae.daemon.engines.base import INPUT_SAMPLE_RATE, VADEngine, VADStream
from personae.daemon.errors import ConfigError
from personae.daemon.models import package_dir

if TYPE_CHECKING:
    from personae.daemon.settings import Settings

FRAME_SAMPLES = 512  # 32 ms at 16 kHz, what the model was trained on
CONTEXT_SAMPLES = 64
_STATE_SHAPE = (1, 1, 128)


def bundled_model_path() -> Path:
    return package_dir("faster_whisper", extra="daemon") / "assets" / "silero_vad_v6.onnx"


class SileroVADStream(VADStream):
    frame_samples = FRAME_SAMPLES

    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)

    def probability(self, frame: np.ndarray) -> float:
        frame = np.asarray(frame, dtype=np.float32)
        if frame.shape != (FRAME_SAMPLES,):
            raise ValueError(
                f"VAD frame must be {FRAME_SAMPLES} mono samples at {INPUT_SAMPLE_RATE} Hz, "
                f"got shape {frame.shape}"
            )
        x = np.concatenate([self._context, frame])[np.newaxis, :]
        prob, self._h, self._c = self._session.run(None, {"input": x, "h": self._h, "c": self._c})
        self._context = x[0, -CONTEXT_SAMPLES:]
        return float(prob.reshape(-1)[0])


class SileroVAD(VADEngine):
    name = "silero"

    def __init__(self, *, model_path: Path | None = None) -> None:
        path = model_path or bundled_model_path()
        if not path.is_file():
            raise ConfigError(f"silero VAD model not found at {path}")
        opts = ort.SessionOptions()
        # A frame is ~1 ms of work: threads would cost more than they save, and many
        # sessions share the cores.
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # InferenceSession.run is thread-safe: one session serves every stream.
        self._session = ort.InferenceSession(
            str(path), sess_options=opts, providers=["CPUExecutionProvider"]
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> SileroVAD:
        return cls()

    def stream(self) -> SileroVADStream:
        return SileroVADStream(self._session)
