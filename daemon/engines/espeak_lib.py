"""libespeak-ng through ctypes: audio with its phoneme events, and words phonemized.

Only ever loaded inside the espeak child process (`espeak_process`): the library keeps
global state, is not thread-safe, and a crash or hang in it must not take the daemon
down. Phoneme events (espeakINITIALIZE_PHONEME_EVENTS, in IPA) carry the millisecond
each phoneme starts on the audio the same call returns, so timings match the audio.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass
from pathlib import Path

AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
INITIALIZE_PHONEME_IPA = 0x0002
CHARS_UTF8 = 1
POS_CHARACTER = 1
PARAM_RATE = 1
PARAM_PITCH = 3
EVENT_LIST_TERMINATED = 0
EVENT_PHONEME = 7
PHONEMES_IPA = 0x02  # espeak_TextToPhonemes: IPA as UTF-8


class _Id(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _Id),
    ]


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


def find_library(name: str = "espeak-ng") -> str | None:
    return ctypes.util.find_library(name)


@dataclass(slots=True)
class Synthesis:
    sample_rate: int
    pcm: bytes  # int16 little-endian mono
    #: (IPA, start ms) of each phoneme event, in order; "" is a pause
    phonemes: list[tuple[str, int]]


class EspeakLib:
    def __init__(self, path: str) -> None:
        self._lib = ctypes.CDLL(path)
        self._lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self._lib.espeak_TextToPhonemes.argtypes = [
            ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int
        ]  # fmt: skip
        self.sample_rate = self._lib.espeak_Initialize(
            AUDIO_OUTPUT_SYNCHRONOUS, 0, None, INITIALIZE_PHONEME_EVENTS | INITIALIZE_PHONEME_IPA
        )
        if self.sample_rate <= 0:
            raise RuntimeError("espeak_Initialize failed (no espeak-ng-data?)")
        self._lib.espeak_Info.restype = ctypes.c_char_p
        self._lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
        data = ctypes.c_char_p()
        self._lib.espeak_Info(ctypes.byref(data))
        self.data_dir = Path(os.fsdecode(data.value or b""))
        self._pcm = bytearray()
        self._phonemes: list[tuple[str, int]] = []
        self._callback = _Callback(self._on_audio)  # kept: the library holds the pointer
        self._lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav, n: int, events) -> int:
        if n > 0:
            self._pcm += ctypes.string_at(wav, n * 2)
        i = 0
        while events[i].type != EVENT_LIST_TERMINATED:
            e = events[i]
            if e.type == EVENT_PHONEME:
                ipa = bytes(e.id.string).split(b"\0", 1)[0].decode("utf-8", "replace")
                self._phonemes.append((ipa, e.audio_position))
            i += 1
        return 0

    def set_voice(self, name: str, *, wpm: int, pitch: int) -> None:
        # espeak-ng silently ignores an unknown "+variant": a typo would give the
        # character the plain voice, so a variant must be one of the data's files
        _, plus, variant = name.partition("+")
        variants = self.data_dir / "voices" / "!v"
        if plus and variants.is_dir() and not (variants / variant).is_file():
            raise ValueError(f"voice variant {variant!r} not found in {variants}")
        # as the espeak-ng program does: a voice name, else a language ("en-gb+f3")
        if self._lib.espeak_SetVoiceByName(name.encode("utf-8")) != 0:
            select = _Voice(languages=name.encode("utf-8"))
            if self._lib.espeak_SetVoiceByProperties(ctypes.byref(select)) != 0:
                raise ValueError(f"voice {name!r} not found")
        self._lib.espeak_SetParameter(PARAM_RATE, wpm, 0)
        self._lib.espeak_SetParameter(PARAM_PITCH, pitch, 0)

    def synthesize(self, text: str) -> Synthesis:
        self._pcm, self._phonemes = bytearray(), []
        data = text.encode("utf-8")
        err = self._lib.espeak_Synth(
            data, len(data) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8, None, None
        )
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed ({err})")
        return Synthesis(self.sample_rate, bytes(self._pcm), self._phonemes)

    def phonemize(self, text: str) -> str:
        """IPA of `text` in the current voice (words separated by spaces)."""
        buf = ctypes.create_string_buffer(text.encode("utf-8"))
        ptr = ctypes.c_void_p(ctypes.addressof(buf))
        out: list[str] = []
        while ptr.value:  # the library advances the pointer clause by clause
            chunk = self._lib.espeak_TextToPhonemes(ctypes.byref(ptr), CHARS_UTF8, PHONEMES_IPA)
            if chunk:
                out.append(chunk.decode("utf-8", "replace"))
        return " ".join(out)
