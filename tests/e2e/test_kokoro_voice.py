"""A character that speaks with Kokoro, end to end: the real daemon and models, a real
socket on 127.0.0.1, the SDK client. The reply's audio is Kokoro's voice for that
character, and whisper hears what the reply says."""

from __future__ import annotations

import numpy as np
import pytest

from personae.daemon import audio as pcm
from personae.daemon.characters import default_cast_dir, load_cast
from personae.sdk import connect
from tests.speech import median_f0, words

pytestmark = pytest.mark.models


def kokoro_characters() -> list[str]:
    return sorted(
        c.id for c in load_cast([default_cast_dir()]).values() if c.voice.engine == "kokoro"
    )


def test_the_default_cast_has_a_kokoro_voice() -> None:
    # chosen by measurement (bench/voices.py, docs/characters.md)
    assert kokoro_characters() == ["wren"]


async def test_a_kokoro_character_answers_in_its_own_voice_over_a_real_socket(
    daemon, settings
) -> None:
    from personae.daemon.engines.stt_faster_whisper import FasterWhisperSTT
    from personae.daemon.engines.tts_kokoro import KokoroTTS

    cid = kokoro_characters()[0]
    async with await connect(daemon.ws, framing="msgpack") as session:
        reply = await session.say("Tell me the latest rumour from the rooftops.", character=cid)
    assert reply.status == "completed" and reply.character == cid and reply.text
    heard = pcm.resample(pcm.pcm16_to_float32(reply.audio), reply.sample_rate, 16_000)
    back = FasterWhisperSTT.from_settings(settings).transcribe(heard).text
    if len(words(reply.text)) >= 3:
        assert words(back) & words(reply.text), (back, reply.text)
    # the same words spoken here by Kokoro in the character's voice sound the same:
    # the pitch the daemon sent is that voice's, not another engine's
    voice = load_cast([default_cast_dir()])[cid].voice
    local = np.concatenate(
        [
            pcm.resample(pcm.int16_to_float32(c.pcm), c.sample_rate, 16_000)
            for c in KokoroTTS.from_settings(settings).synthesize(reply.text, voice)
        ]
    )
    assert median_f0(heard, 16_000) == pytest.approx(median_f0(local, 16_000), rel=0.12)
