"""Lip-sync: a reply piece's timed phonemes become `npc.viseme` events sent with its audio.

The TTS engine times each phoneme on its audio (`AudioChunk.phones`); `speak` joins a
piece's chunks at the session's rate and keeps the phones on the joined timeline.
`events` cuts the piece's visemes and words at the audio chunk boundaries: the event
for chunk i holds what starts inside chunk i and goes out right before that chunk.
Both ride the outbox's data lane, so the barge-in that drops unsent audio drops their
visemes with it, and no viseme a client receives starts past the audio it received.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from personae.daemon import audio as pcm
from personae.daemon.characters import VoiceConfig
from personae.daemon.engines.base import Phone, TTSEngine
from personae.daemon.engines.phones import shifted, word_spans, words_of
from personae.daemon.engines.visemes import visemes_of
from personae.daemon.session.outbox import audio_ms
from personae.sdk import protocol as p


class Speech(NamedTuple):
    pcm: np.ndarray  # int16 at the session's output rate
    phones: tuple[Phone, ...]  # timed on `pcm`; empty when the engine does not know them


def speak(tts: TTSEngine, text: str, voice: VoiceConfig, rate: int) -> Speech:
    """Synthesize one piece at `rate`, its phones moved onto the joined audio."""
    parts: list[np.ndarray] = []
    phones: list[Phone] = []
    at = 0
    for chunk in tts.synthesize(text, voice):
        part = pcm.resample(chunk.pcm, chunk.sample_rate, rate)
        phones += shifted(chunk.phones, at * 1000 / rate)
        parts.append(part)
        at += len(part)
    out = np.concatenate(parts).astype(np.int16) if parts else np.zeros(0, np.int16)
    return Speech(out, tuple(phones))


def events(
    phones: Sequence[Phone],
    text: str,
    *,
    offset_ms: int,
    rate: int,
    step: int,
    samples: int,
    response_id: str,
    item_id: str,
    character: str,
) -> dict[int, p.NpcViseme]:
    """chunk index -> the `npc.viseme` event to send just before that audio chunk.

    The piece's `samples` of audio at `rate` go out in chunks of `step` samples, the
    first at `offset_ms` on the reply's timeline (as `reply.py` sends them)."""
    chunk_starts_ms = [offset_ms + audio_ms(i * 2, rate) for i in range(0, samples, step)]
    if not phones or not chunk_starts_ms:
        return {}
    words = words_of(text)
    out: dict[int, p.NpcViseme] = {}

    def slot(start_ms: int) -> p.NpcViseme:
        i = _chunk_of(start_ms, chunk_starts_ms)
        if i not in out:
            out[i] = p.NpcViseme(
                visemes=[], response_id=response_id, item_id=item_id, character=character
            )
        return out[i]

    for span in visemes_of(phones):
        start = offset_ms + round(span.start_ms)
        end = offset_ms + round(span.start_ms + span.duration_ms)
        if end > start:
            slot(start).visemes.append(
                p.Viseme(viseme=span.viseme, start_ms=start, duration_ms=end - start)  # type: ignore[arg-type]
            )
    for index, (first, last) in sorted(word_spans(phones).items(), key=lambda kv: kv[1]):
        if index >= len(words):
            continue
        start = offset_ms + round(first)
        end = offset_ms + round(last)
        slot(start).words.append(p.WordTiming(text=words[index], start_ms=start,
                                              duration_ms=max(0, end - start)))  # fmt: skip
    return out


def _chunk_of(start_ms: int, chunk_starts_ms: Sequence[int]) -> int:
    """The last chunk that starts at or before `start_ms` (the first for earlier)."""
    lo, hi = 0, len(chunk_starts_ms) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if chunk_starts_ms[mid] <= start_ms:
            lo = mid
        else:
            hi = mid - 1
    return lo
