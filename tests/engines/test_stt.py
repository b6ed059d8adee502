"""faster-whisper on real speech, and the one-time join of the bundled whisper-base."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from personae.daemon.engines import registry
from personae.daemon.engines.stt_faster_whisper import FasterWhisperSTT
from personae.daemon.errors import ConfigError
from personae.daemon.models.whisper import DIR_NAME, whisper_dir
from personae.daemon.settings import Settings
from tests.speech import speak, words

pytestmark = pytest.mark.models

SENTENCE = "Hello Brom, can you sell me a sword and some bread?"
KEY_WORDS = {"sell", "sword", "bread"}


@pytest.fixture(scope="module")
def base(settings) -> FasterWhisperSTT:
    return FasterWhisperSTT.from_settings(settings)


@pytest.fixture(scope="module")
def tiny(settings) -> FasterWhisperSTT:
    return FasterWhisperSTT.from_settings(settings.model_copy(update={"stt_model": "tiny.en"}))


@pytest.fixture(scope="module")
def sentence() -> np.ndarray:
    return speak(SENTENCE, pad_s=0.3)


def test_base_transcribes_name_and_key_words(base, sentence):
    result = base.transcribe(sentence, hotwords=["Brom"])
    assert KEY_WORDS | {"brom"} <= words(result.text), result.text
    assert result.language == "en"
    assert result.duration_s == pytest.approx(len(sentence) / 16_000)


def test_tiny_en_transcribes_key_words(tiny, sentence):
    result = tiny.transcribe(sentence, hotwords=["Brom"])
    assert {"sword", "bread", "brom"} <= words(result.text), result.text


def test_hotwords_bias_towards_an_unusual_name(base):
    addressed = speak("Hello Zephyrine, can you sell me a sword?")
    assert "zephyrine" not in words(base.transcribe(addressed).text)
    assert "zephyrine" in words(base.transcribe(addressed, hotwords=["Brom", "Zephyrine"]).text)
    # A lone hotword that opens the utterance is kept, not taken as already said.
    opening = speak("Zephyrine, can you sell me a sword?")
    assert "zephyrine" in words(base.transcribe(opening, hotwords=["Zephyrine"]).text)


@pytest.mark.parametrize("model", ["base", "tiny"])
def test_silence_and_noise_with_hotwords_transcribe_to_nothing(model, request):
    """Whisper echoes its prompt on non-speech; names must not appear from nowhere."""
    stt = request.getfixturevalue(model)
    rng = np.random.default_rng(0)
    for audio in (
        np.zeros(32_000, dtype=np.float32),
        (0.01 * rng.standard_normal(32_000)).astype(np.float32),
        (0.1 * rng.standard_normal(16_000)).astype(np.float32),
    ):
        assert stt.transcribe(audio, hotwords=["Zephyrine", "Brom", "Varek"]).text == ""


def test_empty_audio_is_an_empty_transcript(base):
    assert base.transcribe(np.zeros(0, dtype=np.float32)).text == ""


def test_registry_builds_it(settings):
    assert isinstance(registry.create("stt", "faster-whisper", settings), FasterWhisperSTT)


def test_missing_model_dir_is_a_config_error_not_a_download(tmp_path):
    settings = Settings(cache_dir=tmp_path, stt_model=str(tmp_path / "no-such-model"))
    with pytest.raises(ConfigError, match="no-such-model"):
        FasterWhisperSTT.from_settings(settings)


def test_dir_without_weights_is_a_config_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"missing model\.bin, tokenizer\.json"):
        FasterWhisperSTT(model_dir=tmp_path)


def test_whisper_dir_joins_once_reports_progress_and_repairs(tmp_path):
    settings = Settings(cache_dir=tmp_path)
    crashed = tmp_path / f".{DIR_NAME}-crashed"  # left by a join that was killed
    crashed.mkdir()
    os.utime(crashed, (time.time() - 7200, time.time() - 7200))
    calls: list[tuple[str, float, float]] = []
    path = whisper_dir(settings, lambda step, done, total: calls.append((step, done, total)))

    assert path == tmp_path / DIR_NAME
    assert {"model.bin", "tokenizer.json", "config.json"} <= {p.name for p in path.iterdir()}
    done = [c[1] for c in calls]
    total = calls[-1][2]
    assert done == sorted(done) and done[-1] == total == (path / "model.bin").stat().st_size
    assert [p.name for p in tmp_path.iterdir()] == [DIR_NAME]  # no temp dirs left behind

    calls.clear()
    built = (path / "model.bin").stat().st_mtime_ns
    assert whisper_dir(settings, lambda *a: calls.append(a)) == path
    assert calls == [] and (path / "model.bin").stat().st_mtime_ns == built  # reused
    assert whisper_dir(settings, verify_hash=True) == path

    # A truncated cache (disk full, killed copy) is noticed by size and rebuilt.
    with (path / "model.bin").open("r+b") as f:
        f.truncate(1000)
    whisper_dir(settings, lambda *a: calls.append(a))
    assert calls
    assert (path / "model.bin").stat().st_size == total

    # Same size, different bytes: only the hash check sees it.
    with (path / "model.bin").open("r+b") as f:
        f.seek(total // 2)
        f.write(b"\x00" * 16)
    calls.clear()
    assert whisper_dir(settings, lambda *a: calls.append(a)) == path
    assert calls == []
    assert whisper_dir(settings, lambda *a: calls.append(a), verify_hash=True) == path
    assert calls

    stt = FasterWhisperSTT(model_dir=path, threads=1)  # the repaired copy loads and works
    assert "sword" in words(stt.transcribe(speak(SENTENCE)).text)


# --- the short encoder window (stt_window_s) ---


@pytest.fixture(scope="module")
def base_full(settings) -> FasterWhisperSTT:
    return FasterWhisperSTT.from_settings(settings.model_copy(update={"stt_window_s": 0}))


QUESTIONS = {
    "Bram, can you fix my sword before nightfall?": {"bram", "fix", "sword"},
    "Wren, meet me at the old well at midnight and bring the key.": {"midnight", "key"},
    "Varek, I found the missing shipment in the warehouse by the docks.": {
        "varek",
        "shipment",
        "warehouse",
    },
}
CAST = ["Mara", "Bram", "Wren", "Varek"]


def test_the_encoder_sees_the_clip_not_thirty_seconds(base):
    from faster_whisper.audio import pad_or_trim

    features = base._model.feature_extractor(np.zeros(10 * 16_000, dtype=np.float32) + 0.001)
    encoded = base._model.encode(pad_or_trim(features))  # padded to 3000 frames like a window
    assert encoded.shape[1] == (features.shape[-1] + 1) // 2  # not 1500


@pytest.mark.parametrize("text", list(QUESTIONS))
def test_short_window_keeps_key_words_and_names(base, base_full, text):
    audio = speak(text, pad_s=0.3)
    short = base.transcribe(audio, hotwords=CAST).text
    assert QUESTIONS[text] <= words(short), short
    assert QUESTIONS[text] <= words(base_full.transcribe(audio, hotwords=CAST).text)


def test_a_window_too_short_to_trust_falls_back_to_the_full_one(settings):
    """Whisper loops ("Yes. Yes. Yes. ...") on a short window; such a decode is redone."""
    stt = FasterWhisperSTT.from_settings(settings.model_copy(update={"stt_window_s": 2.0}))
    text = stt.transcribe(speak("Yes.", pad_s=0.3), hotwords=CAST).text
    assert words(text) == {"yes"}, text


async def test_a_turn_transcribed_piece_by_piece_keeps_its_key_words(base):
    """The session's incremental transcription, on a real voice and real whisper."""
    import asyncio

    from personae.daemon.session.incremental import IncrementalTranscript

    first = speak("Bram, can you fix my sword before nightfall?", pad_s=0.3)
    turn = np.concatenate([first, speak("I need a lantern for the mines.", pad_s=0.2)])
    heard: list[float] = []

    async def transcribe(audio: np.ndarray):
        heard.append(len(audio) / 16_000)
        return await asyncio.to_thread(base.transcribe, audio, hotwords=CAST)

    pieces = IncrementalTranscript(transcribe, min_piece_s=1.0)
    pieces.pause_started(1, first)
    pieces.pause_ended(1, 400)
    result = await pieces.finish(turn)
    assert heard == [len(first) / 16_000, (len(turn) - len(first)) / 16_000]
    assert {"bram", "fix", "sword", "lantern", "mines"} <= words(result.text), result.text


SCENE_NAMES = [  # the default cast's names and aliases, as a scene of three gives them
    *("Bram", "Bram Holloway", "smith", "blacksmith", "Mara", "Mara Quill", "archivist"),
    *("Wren", "courier"),
]


def test_a_recital_of_the_names_is_told_from_speech() -> None:
    from personae.daemon.engines.stt_faster_whisper import recites

    assert recites("Mara, Bram Holloway, smith, blacksmith, blacksmith,", SCENE_NAMES)
    assert recites("Mara Quill, archivist, blacksmith, blacksmith,", SCENE_NAMES)
    assert not recites("Mara, do the town records say who built the old mill?", SCENE_NAMES)
    assert not recites("Bram, Mara, Wren!", SCENE_NAMES)  # calling all three is speech
    assert not recites("Bram the smith and Mara Quill", [])


def test_a_recited_prompt_is_decoded_again_with_fewer_names(base, monkeypatch) -> None:
    """Whisper given the names recites them: the turn is decoded again with the proper
    names only, then with none, and the first decode that is not a recital stands."""
    prompts: list[str | None] = []
    said = {  # what this whisper "hears" for each prompt
        "A talk with Bram, Bram Holloway, smith, blacksmith, Mara, Mara Quill, archivist, "
        "Wren, courier.": "Mara, Bram Holloway, smith, blacksmith, blacksmith,",
        "A talk with Bram, Bram Holloway, Mara, Mara Quill, Wren.": "Mara Quill, archivist, smith.",
        None: "I'm a good town record, say, who built the old mill.",
    }

    def decode(audio, prompt):
        prompts.append(prompt)
        return said[prompt], False, "en"

    monkeypatch.setattr(base, "_decode", decode)
    text = base.transcribe(np.zeros(16_000, np.float32), hotwords=SCENE_NAMES).text
    assert text == said[None]
    assert prompts == list(said)  # in that order, each once
    prompts.clear()
    said[None] = "unused"
    said["A talk with Bram, Bram Holloway, Mara, Mara Quill, Wren."] = "Mara, the old mill?"
    assert base.transcribe(np.zeros(16_000, np.float32), hotwords=SCENE_NAMES).text == (
        "Mara, the old mill?"
    )
    assert len(prompts) == 2


def test_a_robotic_voice_s_question_is_not_replaced_by_the_names() -> None:
    """Real whisper-base on espeak-ng en-us+m3: with the scene's names as hotwords it
    once heard "Mara, do the town records say who built the old mill?" as "Mara, Bram
    Holloway, smith, blacksmith, blacksmith,". The question's words must survive."""
    stt = FasterWhisperSTT.from_settings(Settings())
    audio = speak("Mara, do the town records say who built the old mill?", voice="en-us+m3")
    text = stt.transcribe(audio, hotwords=SCENE_NAMES).text
    assert {"town", "mill"} <= words(text), text
