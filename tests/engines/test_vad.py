"""Silero VAD on real synthesized speech: separates speech from silence and noise, and
streams carry state exactly as silero's reference implementation does."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from personae.daemon.engines import registry
from personae.daemon.engines.vad_silero import FRAME_SAMPLES, SileroVAD, bundled_model_path
from tests.speech import speak

pytestmark = pytest.mark.models

PAD_S = 1.0
PAD_FRAMES = int(PAD_S * 16_000) // FRAME_SAMPLES


@pytest.fixture(scope="module")
def vad() -> SileroVAD:
    return SileroVAD()


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """One second of silence, a spoken sentence, one second of silence; (n, 512)."""
    audio = speak("The blacksmith said the sword would be ready by nightfall.", pad_s=PAD_S)
    return audio[: len(audio) // FRAME_SAMPLES * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)


def run(stream, frames: np.ndarray) -> np.ndarray:
    return np.array([stream.probability(f) for f in frames])


def test_speech_is_high_and_silence_low(vad, frames):
    probs = run(vad.stream(), frames)
    lead, speech, tail = probs[:PAD_FRAMES], probs[PAD_FRAMES:-PAD_FRAMES], probs[-PAD_FRAMES:]
    assert lead.max() < 0.1
    assert np.median(speech) > 0.9
    assert np.mean(speech > 0.5) > 0.75  # short dips between words are fine
    assert tail[8:].max() < 0.1  # hangover after speech ends, then silence


def test_noise_is_not_speech(vad):
    rng = np.random.default_rng(0)
    noise = (0.05 * rng.standard_normal(3 * 16_000)).astype(np.float32)
    probs = run(vad.stream(), noise[: len(noise) // FRAME_SAMPLES * FRAME_SAMPLES].reshape(-1, 512))
    assert np.mean(probs) < 0.1 and np.mean(probs > 0.5) < 0.05


def test_stream_matches_silero_reference(vad, frames):
    """Frame-by-frame streaming equals faster-whisper's whole-signal silero run."""
    from faster_whisper.vad import SileroVADModel

    reference = SileroVADModel(str(bundled_model_path()))(frames.reshape(-1)).reshape(-1)
    np.testing.assert_allclose(run(vad.stream(), frames), reference, atol=1e-5)


def test_state_carries_across_frames_and_reset_forgets_it(vad, frames):
    streamed = run(vad.stream(), frames)
    inside = range(PAD_FRAMES + 5, PAD_FRAMES + 35)
    # Each frame judged by a fresh stream, with no history: less sure it is speech.
    isolated = np.array([vad.stream().probability(frames[k]) for k in inside])
    assert streamed[list(inside)].mean() - isolated.mean() > 0.1

    k = PAD_FRAMES + 20
    warm = vad.stream()
    run(warm, frames[:k])
    warm.reset()
    assert warm.probability(frames[k]) == pytest.approx(isolated[k - inside.start], abs=1e-7)


def test_streams_are_independent_across_threads(vad, frames):
    expected = run(vad.stream(), frames)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: run(vad.stream(), frames), range(4)))
    for r in results:
        np.testing.assert_allclose(r, expected, atol=1e-6)


def test_wrong_frame_size_raises(vad):
    with pytest.raises(ValueError, match="512"):
        vad.stream().probability(np.zeros(480, dtype=np.float32))


def test_registry_builds_it(settings):
    engine = registry.create("vad", "silero", settings)
    assert isinstance(engine, SileroVAD) and engine.stream().frame_samples == FRAME_SAMPLES
