"""Whether the player has finished their turn, from how the turn sounds (Smart Turn v3.2).

When the VAD has heard a short pause (settings.end_of_turn_pause_ms), the listener asks
the model about the turn so far: its last 8 s as a Whisper log-mel. A turn it calls
complete ends at once; otherwise the silence rules still end it (vad_silence_ms is the
cap). About 45 ms a check on one onnxruntime thread.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import numpy as np

from personae.daemon.errors import ConfigError, EngineError, ModelNotFoundError
from personae.daemon.session.log_mel import SAMPLE_RATE, log_mel
from personae.daemon.settings import Settings

log = logging.getLogger("personae.daemon")

WINDOW_S = 8


class EndOfTurnModel(Protocol):
    def probability(self, audio: np.ndarray) -> float:
        """How likely the turn is over: `audio` is the turn so far, 16 kHz float32."""
        ...


class SmartTurn:
    """Smart Turn v3.2 on onnxruntime (CPU, `threads` intra-op threads)."""

    name = "smart-turn"

    def __init__(self, path: Path, *, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = threads
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self._session = ort.InferenceSession(
                str(path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ConfigError(f"cannot load the end-of-turn model {path}: {exc}") from exc

    def probability(self, audio: np.ndarray) -> float:
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"expected mono audio (1-D), got shape {audio.shape}")
        n = WINDOW_S * SAMPLE_RATE
        # the last 8 s, zero-padded at the front, as the model was trained
        audio = audio[-n:] if audio.size >= n else np.pad(audio, (n - audio.size, 0))
        features = log_mel(audio)[None]
        try:
            (out,) = self._session.run(None, {"input_features": features})
        except Exception as exc:  # onnxruntime's own untyped errors
            raise EngineError(str(exc), engine=self.name) from exc
        return float(np.asarray(out).reshape(-1)[0])


def load_end_of_turn(settings: Settings) -> SmartTurn | None:
    """The end-of-turn model if settings ask for it and it is installed; else None, with
    a log line saying why (turns then end by the silence rules alone)."""
    if not settings.end_of_turn_model:
        return None
    from personae.daemon.models.smart_turn import smart_turn_path

    try:
        return SmartTurn(smart_turn_path(), threads=settings.end_of_turn_threads)
    except (ModelNotFoundError, ConfigError) as exc:
        log.warning("end-of-turn model off: %s", exc)
        return None
