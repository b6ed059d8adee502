"""Kokoro-82M TTS (int8 ONNX, 24 kHz): distinct English voices and per-character blends.

The voice is a Kokoro voice or a blend (see kokoro_voices); `rate` is Kokoro's own
speed, `pitch` the tape-speed shift Piper uses (synthesize `pitch` times slower,
resample `pitch` times faster). Streams one chunk per clause, as espeak-ng splits the
sentence, so the first clause plays while the rest is computed (Kokoro costs ~0.2 s
per short clause on two quiet cores, several times Piper).

Phone timings come from the model's own predicted durations: the ONNX graph computes
them (`/encoder/Clip`, frames of 600 samples per token) but does not return them, so
that tensor is added to the graph's outputs at load.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort

from personae.daemon.audio import float32_to_int16, resample
from personae.daemon.characters import VoiceConfig
from personae.daemon.engines import kokoro_phonemes as kp
from personae.daemon.engines.base import AudioChunk, Phone, TTSCapabilities, TTSEngine
from personae.daemon.engines.espeak_lock import ESPEAK_LOCK
from personae.daemon.engines.kokoro_voices import DEFAULT_VOICE, VoiceBank
from personae.daemon.engines.phones import assign_words, words_of
from personae.daemon.errors import missing_extra

if TYPE_CHECKING:
    from personae.daemon.settings import Settings

SAMPLE_RATE = 24_000
SAMPLES_PER_FRAME = 600  # one predicted duration unit (25 ms)
DURATIONS = "/encoder/Clip_output_0"


def _session(model: Path, threads: int) -> ort.InferenceSession:
    import onnx

    graph = onnx.load(str(model))
    if DURATIONS not in {o.name for o in graph.graph.output}:
        graph.graph.output.append(
            onnx.helper.make_tensor_value_info(DURATIONS, onnx.TensorProto.FLOAT, None)
        )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads  # 0: onnxruntime uses every core
    opts.log_severity_level = 3
    return ort.InferenceSession(
        graph.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"]
    )


def phones_of(phonemes: str, frames: np.ndarray, scale: float, first_word: int) -> list[Phone]:
    """Timed phones of one call: `frames` per token, pads included at both ends."""
    ms_per_frame = 1000.0 * SAMPLES_PER_FRAME / SAMPLE_RATE * scale
    t = float(frames[0]) * ms_per_frame
    out = [Phone("", 0.0, t)]  # the pads at both ends are silence: phones tile the audio
    word, in_word, carry = first_word - 1, False, 0.0
    for ch, n in zip(phonemes, frames[1:-1], strict=True):
        dur = float(n) * ms_per_frame
        if ch == "ː" and out[-1].word >= 0:  # length: part of the vowel before it
            last = out[-1]
            out[-1] = Phone(last.symbol, last.start_ms, last.duration_ms + dur, last.word)
            t += dur
            continue
        if ch in kp.MARKS:  # stress: part of the phone after it
            carry += dur
            t += dur
            continue
        if ch in kp.PAUSES:
            in_word = False
            out.append(Phone(" " if ch == " " else "", t - carry, dur + carry))
        else:
            if not in_word:
                word, in_word = word + 1, True
            out.append(Phone(kp.TO_IPA.get(ch, ch), t - carry, dur + carry, word))
        t += dur
        carry = 0.0
    out.append(Phone("", t - carry, float(frames[-1]) * ms_per_frame + carry))
    return out


def _espeak(texts: list[str], accent: str) -> list[list[tuple[str, str, bool]]]:
    """espeak-ng's clauses of each text (IPA, terminator, ends a sentence) in `accent`."""
    from piper import espeakbridge
    from piper.phonemize_espeak import ESPEAK_DATA_DIR

    global _espeak_ready
    with ESPEAK_LOCK:
        if not _espeak_ready:
            espeakbridge.initialize(str(ESPEAK_DATA_DIR))
            _espeak_ready = True
        espeakbridge.set_voice(kp.ESPEAK_VOICE[accent])
        return [espeakbridge.get_phonemes(text) for text in texts]


def espeak_clauses(text: str, accent: str) -> list[kp.Clause]:
    """The text's clauses as espeak-ng splits them (at , ; : . ! ?), in Kokoro phonemes."""
    return kp.clauses(_espeak([text], accent)[0], accent)


def espeak_word_ipa(words: list[str], accent: str) -> list[str]:
    """Each text word phonemized on its own: what `assign_words` aligns a clause's phones
    to. espeak-ng joins words when it speaks a sentence ("out of" as one), so its word
    breaks do not name the text's words."""
    return ["".join(ipa for ipa, _, _ in raw) for raw in _espeak(words, accent)]


_espeak_ready = False


class KokoroTTS(TTSEngine):
    name = "kokoro"

    def __init__(self, folder: Path, *, threads: int = 0) -> None:
        try:
            import onnx  # noqa: F401 - the graph edit at load
            import piper  # noqa: F401 - espeak-ng and its data, through piper-tts
        except ImportError as exc:
            raise missing_extra(exc.name or "piper-tts", "kokoro") from None
        from personae.daemon.models.kokoro import MODEL_FILE, voice_names

        self.bank = VoiceBank(folder, voice_names(folder))
        self.capabilities = TTSCapabilities(streaming=True, voices=tuple(sorted(self.bank.names)))
        self._session = _session(folder / MODEL_FILE, threads)
        self._lock = threading.Lock()  # blends are cached in a dict

    @classmethod
    def from_settings(cls, settings: Settings) -> KokoroTTS:
        from personae.daemon.models.kokoro import kokoro_dir

        return cls(kokoro_dir(settings), threads=settings.engine_threads)

    def check_voice(self, voice: VoiceConfig) -> None:
        with self._lock:
            self.bank.blend(voice.voice)

    def synthesize(self, text: str, voice: VoiceConfig) -> Iterator[AudioChunk]:
        with self._lock:
            blend, styles = self.bank.blend(voice.voice or DEFAULT_VOICE)
        speed = np.array([voice.rate / voice.pitch], np.float32)
        word = 0
        word_ipa = espeak_word_ipa(words_of(text), blend.accent)
        for clause in espeak_clauses(text, blend.accent):
            for piece in kp.split_long(clause.phonemes):
                ids = kp.tokens(piece)
                audio, frames = self._session.run(
                    None,
                    {
                        "tokens": np.array([[0, *ids, 0]], np.int64),
                        "style": styles[len(ids) - 1 : len(ids)],
                        "speed": speed,
                    },
                )
                audio = np.asarray(audio, np.float32).reshape(-1)
                frames = np.asarray(frames).reshape(-1)
                if voice.pitch != 1.0:
                    audio = resample(audio, SAMPLE_RATE * voice.pitch, SAMPLE_RATE)
                # the model's frames and its audio agree to the sample
                phones = phones_of(piece, frames, 1.0 / voice.pitch, word)
                phones = [
                    ph
                    if ph.word < 0
                    else Phone(ph.symbol, ph.start_ms, ph.duration_ms, ph.word + word)
                    for ph in assign_words(phones, word_ipa[word:])
                ]
                word = max((p.word for p in phones), default=word - 1) + 1
                yield AudioChunk(
                    pcm=float32_to_int16(audio), sample_rate=SAMPLE_RATE, phones=tuple(phones)
                )
