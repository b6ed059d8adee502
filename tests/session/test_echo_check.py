"""The echo check (daemon/session/echo.py): the reference it keeps, what it does to the
microphone without reply audio, and, with real voices and the silero VAD in a simulated
room (daemon/testing/echo_room.py), echo versus a player barging in."""

from __future__ import annotations

import numpy as np
import pytest

from personae.daemon import audio as pcm
from personae.daemon.session.echo import FFT, HOP, EchoCheck, FarEnd
from personae.daemon.testing.echo_room import Case, Room, simulate
from tests.speech import speak

SR = 16000


def test_far_end_reads_back_what_was_played_where_it_was_due_and_silence_elsewhere() -> None:
    far = FarEnd(seconds=2.0, clock=lambda: 0.0)
    tone = (np.sin(np.arange(1600) / 5) * 8000).astype("<i2")
    far.play("r1", 1.0, tone.tobytes(), SR)  # due 1 s in: samples 16000..17600
    got = far.read(15000, 18000)
    assert not got[:1000].any() and not got[2600:].any()
    np.testing.assert_allclose(got[1000:2600], pcm.int16_to_float32(tone), atol=1e-6)
    far.play("r1", 5.0, tone.tobytes(), SR)  # the same response follows on, back to back
    assert far.read(17600, 19200).any()
    far.play("r2", 10.0, tone.tobytes(), SR)  # 8 s later: the ring forgot the first
    assert not far.read(16000, 19200).any()
    assert not far.read(150000, 160000).any()  # nothing written there: silence, not stale


def test_without_reply_audio_the_microphone_passes_untouched() -> None:
    check = EchoCheck(FarEnd(clock=lambda: 0.0))
    mic = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1
    out = np.concatenate(
        [check.process(mic[i : i + 320], 10.0 + (i + 320) / SR) for i in range(0, SR, 320)]
    )
    assert SR - FFT < len(out) <= SR - (FFT - HOP)  # the rest waits for more input
    np.testing.assert_allclose(out, mic[: len(out)], atol=1e-5)
    assert check.frames_checked == 0


@pytest.fixture(scope="module")
def vad():
    from personae.daemon.engines.vad_silero import SileroVAD

    return SileroVAD()


REPLY = (
    "Heard? Boss, I've seen it. Green lights, midnight, twice. Costs you a pie to hear the rest."
)


def _reply(voice: str) -> np.ndarray:
    return pcm.float32_to_int16(speak(REPLY, rate=24000, voice=voice))


@pytest.mark.models
@pytest.mark.parametrize(
    ("voice", "delay_ms", "gain_db"),
    [("piper", 100, -6), ("en-gb+f3", 200, -10), ("piper", 300, -20), ("en-gb+f3", 280, -6)],
)
def test_echo_alone_barges_in_without_the_check_and_not_with_it(
    vad, voice: str, delay_ms: int, gain_db: float
) -> None:
    case = Case(_reply(voice), 24000, Room(delay_ms=delay_ms, gain_db=gain_db, seed=delay_ms))
    assert simulate(case, vad, echo_check=False).barge_in_ms is not None
    assert simulate(case, vad, echo_check=True).starts == []


@pytest.mark.models
def test_the_delay_found_is_the_room_s() -> None:
    far = FarEnd(clock=lambda: 0.0)
    check = EchoCheck(far)
    simulate(Case(_reply("piper"), 24000, Room(delay_ms=230, gain_db=-14)), _NoVAD(), check=check,
             echo_check=True)  # fmt: skip
    assert check.delay is not None
    assert abs(check.delay * 1000 / SR - 230) < 3  # the resampler's few samples of delay


@pytest.mark.models
@pytest.mark.parametrize(("voice", "at_s"), [("en-us+m3", 0.6), ("piper", 2.0)])
def test_the_player_over_the_echo_still_barges_in(vad, voice: str, at_s: float) -> None:
    speech = speak("Wait, stop there, I need to ask you something.", voice=voice)
    case = Case(_reply("en-gb+f3"), 24000, Room(delay_ms=250, gain_db=-8, seed=1), speech, at_s)
    out = simulate(case, vad, echo_check=True)
    assert out.barge_in_ms is not None and out.speech_ms is not None
    assert out.barge_in_ms >= out.speech_ms  # fired by the player, not by the echo before


@pytest.mark.models
def test_a_client_with_no_echo_path_pays_for_the_guess_in_its_first_reply_only(vad) -> None:
    """Headphones: no delay is ever found. In the session's first reply the check
    guesses that any delay may be echo, which holds a barge-in back; after a second of
    reply audio it stops guessing, and in the next reply the player barges in at once."""
    speech = speak("Wait, stop there.", voice="en-us+m3")
    quiet = Room(gain_db=-200.0)
    case = Case(_reply("piper"), 24000, quiet, speech, 0.3)
    first = simulate(case, vad, echo_check=True)
    check = EchoCheck(FarEnd(clock=lambda: 0.0))
    simulate(Case(_reply("piper"), 24000, quiet), vad, echo_check=True, check=check)
    assert check.delay is None
    later = simulate(case, vad, echo_check=True, check=check)
    assert first.barge_in_ms is not None and later.barge_in_ms is not None
    assert later.speech_ms is not None and later.barge_in_ms >= later.speech_ms
    assert later.barge_in_ms < first.barge_in_ms


class _NoVAD:
    """Never speech: the delay test looks at the echo check only."""

    def stream(self):
        class Stream:
            frame_samples = 512

            def probability(self, frame: np.ndarray) -> float:
                return 0.0

            def reset(self) -> None:
                pass

        return Stream()


def test_raw_keeps_the_microphone_delayed_as_the_cleaned_output() -> None:
    """The turn's audio is the microphone as it came in, sample for sample with what the
    VAD judged: `raw` is as long as `process`'s output, and both start where the input did."""
    far = FarEnd(clock=lambda: 0.0)
    far.play("r", 10.0, (np.ones(SR, "<i2") * 3000).tobytes(), SR)  # reply audio about
    check = EchoCheck(far)
    mic = np.random.default_rng(1).standard_normal(SR).astype(np.float32) * 0.1
    out, raw = [], []
    for i in range(0, SR, 300):  # chunks that are not whole hops
        out.append(check.process(mic[i : i + 300], 10.2 + (i + 300) / SR))
        raw.append(check.raw)
        assert len(raw[-1]) == len(out[-1])
    raw_all = np.concatenate(raw)
    np.testing.assert_array_equal(raw_all, mic[: len(raw_all)])
    assert check.frames_checked > 0


@pytest.mark.models
@pytest.mark.parametrize("voice", ["piper", "en-us+m3", "en+f3"])
def test_a_player_over_the_reply_s_tail_is_never_taken_for_its_echo(voice: str) -> None:
    """No echo path (headphones, a game's own echo cancelling): the player starts
    talking as the reply ends. The delay search must not lock onto a chance match
    between the two voices: a delay adopted from it took the player's first words out
    of the turn ("Mara," of "Mara, do the town records...", which then went to the
    character who had just spoken)."""
    said = "The price is 20 gold pieces for two handshakes worth twenty silver coins each."
    reply = pcm.float32_to_int16(speak(said, rate=24000))
    line = speak("Mara, do the town records say who built the old mill?", voice=voice)
    for offset_s in (-1.0, -0.6, -0.3, 0.5):  # from the reply's last sample
        check = EchoCheck(FarEnd(clock=lambda: 0.0))
        case = Case(reply, 24000, Room(gain_db=-200.0), line, len(reply) / 24000 + offset_s)
        simulate(case, _NoVAD(), echo_check=True, check=check)
        assert check.delay is None, (offset_s, check.delay, check.confidence)
