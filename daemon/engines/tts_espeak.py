"""espeak-ng TTS: libespeak-ng in a child process, with the phoneme timings it speaks.

Robotic but instant, dozens of voices and variants ("en-us+f3", "en-gb+m2"), and
already installed wherever Piper is (Piper phonemizes with espeak-ng data). The
library reports each phoneme's start on the audio it returns (its phoneme events), so
every chunk carries exact `phones` for lip-sync and word timings. It runs in a child
process (`espeak_process`): the library is not thread-safe, and a crash or hang in it
costs one sentence and a restart, never the daemon.
"""

from __future__ import annotations

import json
import math
import os
import select
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from personae.daemon.characters import VoiceConfig
from personae.daemon.engines.base import AudioChunk, Phone, TTSCapabilities, TTSEngine
from personae.daemon.engines.espeak_lib import find_library
from personae.daemon.engines.espeak_process import HEADER
from personae.daemon.engines.phones import PREFIX_MARKS, SUFFIX_MARKS, assign_words, fold, words_of
from personae.daemon.errors import ConfigError, EngineError

if TYPE_CHECKING:
    from personae.daemon.settings import Settings

DEFAULT_VOICE = "en-us"
BASE_WPM = 175  # espeak-ng's default speed
BASE_PITCH = 50  # espeak-ng's default pitch, on its 0-99 scale
#: measured: each step of -p raises F0 by about 1% (-p 50 -> 103 Hz, 65 -> 119, 80 -> 139)
PITCH_STEPS_PER_LN = 100.0
TIMEOUT_S = 30.0


def wpm_for(rate: float) -> int:
    return max(80, min(450, round(BASE_WPM * rate)))


def pitch_for(pitch: float) -> int:
    return max(0, min(99, round(BASE_PITCH + PITCH_STEPS_PER_LN * math.log(pitch))))


class EspeakTTS(TTSEngine):
    name = "espeak"
    capabilities = TTSCapabilities(streaming=False, voices=(DEFAULT_VOICE,))

    def __init__(self, *, library: str = "espeak-ng", timeout_s: float = TIMEOUT_S) -> None:
        path = find_library(library) if os.sep not in library else library
        if path is None:
            raise ConfigError(
                f"lib{library} not found: install it with `apt-get install espeak-ng` "
                "(or `brew install espeak-ng`)"
            )
        self._library = path
        self._timeout = timeout_s
        self._lock = threading.Lock()
        #: the running child, in a list the finalizer shares: engines are never closed
        #: explicitly, so the child ends (and its pipes close) when the engine goes
        self._children: list[subprocess.Popen[bytes]] = []
        weakref.finalize(self, _stop_all, self._children)

    @classmethod
    def from_settings(cls, settings: Settings) -> EspeakTTS:
        return cls()

    def check_voice(self, voice: VoiceConfig) -> None:
        name = DEFAULT_VOICE if voice.voice == "default" else voice.voice
        header, _ = self._ask({"text": "", "voice": name, "wpm": wpm_for(voice.rate),
                               "pitch": pitch_for(voice.pitch), "words": []})  # fmt: skip
        if not header["ok"]:
            raise ConfigError(f"espeak-ng voice {name!r}: {header['error']}")

    def synthesize(self, text: str, voice: VoiceConfig) -> Iterator[AudioChunk]:
        name = DEFAULT_VOICE if voice.voice == "default" else voice.voice
        words = words_of(text)
        request = {"text": text, "voice": name, "wpm": wpm_for(voice.rate),
                   "pitch": pitch_for(voice.pitch), "words": words}  # fmt: skip
        header, audio = self._ask(request)
        if not header["ok"]:
            raise EngineError(f"voice {name!r}: {header['error']}", engine=self.name)
        rate = int(header["rate"])
        pcm = np.frombuffer(audio, "<i2").astype(np.int16)
        if pcm.size:
            phones = timed_phones(header["phonemes"], pcm.size * 1000 / rate)
            phones = assign_words(phones, header["word_ipa"])
            yield AudioChunk(pcm=pcm, sample_rate=rate, phones=tuple(phones))

    def close(self) -> None:
        with self._lock:
            self._stop()

    # --- the child process ---

    def _ask(self, request: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        data = json.dumps(request).encode("utf-8")
        with self._lock:
            deadline = time.monotonic() + self._timeout
            for attempt in (1, 2):
                child = self._started()
                try:
                    assert child.stdin is not None and child.stdout is not None
                    child.stdin.write(HEADER.pack(len(data)) + data)
                    child.stdin.flush()
                    (n,) = HEADER.unpack(self._read(child, HEADER.size, deadline))
                    header = json.loads(self._read(child, n, deadline))
                    return header, self._read(child, int(header.get("bytes", 0)), deadline)
                except TimeoutError as exc:
                    self._stop()
                    raise EngineError(
                        f"timed out after {self._timeout} s", engine=self.name
                    ) from exc
                except (OSError, EOFError, ValueError) as exc:
                    self._stop()
                    # a child that had died since the last sentence: one fresh try
                    if attempt == 2 or not isinstance(exc, EOFError | BrokenPipeError):
                        raise EngineError(
                            f"espeak-ng process failed: {exc}", engine=self.name
                        ) from exc
        raise AssertionError("unreachable")

    def _started(self) -> subprocess.Popen[bytes]:
        if self._children and self._children[0].poll() is not None:
            self._stop()
        if not self._children:
            command = [sys.executable, "-m", "personae.daemon.engines.espeak_process"]
            self._children.append(
                subprocess.Popen(
                    [*command, self._library],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                )
            )
        return self._children[0]

    def _stop(self) -> None:
        _stop_all(self._children)

    @staticmethod
    def _read(child: subprocess.Popen[bytes], n: int, deadline: float) -> bytes:
        assert child.stdout is not None
        fd = child.stdout.fileno()
        out = bytearray()
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                raise TimeoutError
            got = os.read(fd, n - len(out))
            if not got:
                raise EOFError(f"exit code {child.poll()}")
            out += got
        return bytes(out)


def _stop_all(children: list[subprocess.Popen[bytes]]) -> None:
    while children:
        child = children.pop()
        child.kill()
        child.wait()
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()


def timed_phones(events: list[list[Any]], audio_ms: float) -> list[Phone]:
    """espeak-ng's (IPA, start ms) phoneme events as folded phones that tile the audio.

    An event may hold several sounds ("aɪ", "tʃ"): they share its time equally, so
    each gets its own viseme. A phoneme lasts until the next one starts; the last one
    until the audio ends."""
    raw: list[Phone] = []
    starts = [min(float(ms), audio_ms) for _, ms in events]
    if not starts or starts[0] > 0:
        raw.append(Phone(" ", 0.0, starts[0] if starts else audio_ms))
    for k, (ipa, _) in enumerate(events):
        start = starts[k]
        end = starts[k + 1] if k + 1 < len(events) else audio_ms
        sounds = [c for c in ipa if c not in PREFIX_MARKS | SUFFIX_MARKS]
        if not sounds:
            raw.append(Phone(ipa or " ", start, end - start))
            continue
        share = (end - start) / len(sounds)
        at = start
        for c in ipa:
            if c in PREFIX_MARKS | SUFFIX_MARKS:
                raw.append(Phone(c, at, 0.0))
            else:
                raw.append(Phone(c, at, share))
                at += share
    return fold(raw)
