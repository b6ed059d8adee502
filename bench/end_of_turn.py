"""End of turn: the silence rules alone vs Smart Turn v3.2 at a 200 ms pause.

Spoken turns (Piper, the bundled voice, at 16 kHz) of two kinds:

- complete questions, followed by silence: how long after the speech does each rule
  end the turn (audio time, plus the model's compute for Smart Turn)?
- questions with a mid-sentence pause of --pause-ms (the two halves synthesised apart
  and joined with silence, as a player who stops to think): does a rule end the turn at
  that pause (a false cut-off)?

Rules, side by side on the same audio, with the silero VAD, whisper-base transcribing
each pause as the daemon does (its text vetoes or allows the early ends):

- silence: the turn ends after vad_silence_ms (600 ms), or after
  vad_silence_complete_ms (300 ms) once the pause's transcript reads as a finished
  sentence (today's default before issue 14);
- smart_turn: the same, and at a 200 ms pause Smart Turn is asked; a turn it calls
  complete ends unless the pause's transcript is a bare greeting or name or ends on a
  dangling word (issue 14's default).

    personae bench end_of_turn [--pause-ms 500]
"""

from __future__ import annotations

import argparse
import time

import _perf
import numpy as np

from personae.daemon import audio as pcm
from personae.daemon.characters import VoiceConfig, default_cast_dir, load_cast
from personae.daemon.engines import registry
from personae.daemon.engines.stt_faster_whisper import FasterWhisperSTT
from personae.daemon.engines.tts_piper import PiperTTS
from personae.daemon.session.end_of_turn import load_end_of_turn
from personae.daemon.session.endpointing import (
    Endpointer,
    PauseLasted,
    PauseStarted,
    SpeechEnded,
    ends_open,
    looks_complete,
)
from personae.daemon.settings import Settings

SR = 16000
COMPLETE = [
    "Bram, can you fix my sword before nightfall?",
    "Where can I find an old map of the river?",
    "Have you heard any rumours about the mill?",
    "How much for a new horseshoe?",
    "Thank you, I will come back tomorrow.",
    "Mara, what do the town records say about the bridge?",
    "Is the bridge safe to cross after dark?",
    "Who do you think is carrying the lights?",
]
#: (first half, second half): the player stops between them
PAUSED = [
    ("Bram, can you", "fix my sword before nightfall?"),
    ("I was wondering if", "you have seen the lights on the mill."),
    ("Where can I find", "an old map of the river?"),
    ("Hey Mara,", "what do the town records say about the bridge?"),
    ("I need a new", "horseshoe for my horse."),
    ("So the bridge", "is it safe to cross after dark?"),
    ("Tell me about", "the captain of the guard."),
    ("Well, I think that", "someone is carrying lights at night."),
]
NAMES = [n for ch in load_cast([default_cast_dir()]).values() for n in ch.names]


def synth(tts: PiperTTS, text: str) -> np.ndarray:
    chunks = list(tts.synthesize(text, VoiceConfig()))
    audio = np.concatenate([pcm.int16_to_float32(c.pcm) for c in chunks])
    audio = pcm.resample(audio, chunks[0].sample_rate, SR).astype(np.float32)
    # Piper's own leading and trailing silence off, so pauses are the ones set here and
    # the turn's end is measured from the end of speech
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    return audio[loud[0] : loud[-1] + 1]


def run_turn(audio, *, settings, vad, stt, model) -> tuple[int | None, float]:
    """(ms into the audio where the turn ended, or None; model seconds spent)."""
    ep = Endpointer(
        vad.stream(),
        threshold=settings.vad_threshold,
        min_speech_ms=settings.vad_min_speech_ms,
        silence_ms=settings.vad_silence_ms,
        prefix_ms=settings.vad_prefix_ms,
        complete_ms=settings.vad_silence_complete_ms,
        check_ms=settings.end_of_turn_pause_ms if model is not None else 0,
    )
    texts: dict[int, str] = {}
    spent = 0.0
    step = SR // 10  # 100 ms chunks, as a client streams them
    for i in range(0, len(audio), step):
        for ev in ep.feed(audio[i : i + step]):
            if isinstance(ev, SpeechEnded):
                return ev.at_ms, spent
            if isinstance(ev, PauseStarted):
                # the daemon transcribes each pause; its text is ready well before 300 ms
                texts[ev.pause] = stt.transcribe(ev.audio, hotwords=NAMES).text
                if looks_complete(texts[ev.pause], NAMES):
                    ep.mark_complete(ev.pause)
            elif isinstance(ev, PauseLasted):
                t0 = time.perf_counter()
                prob = model.probability(ev.audio)
                spent += time.perf_counter() - t0
                if prob >= settings.end_of_turn_threshold and not ends_open(
                    texts.get(ev.pause, ""), NAMES
                ):
                    ended = ep.end_at_pause(ev.pause)
                    if ended is not None:
                        return ended.at_ms, spent
    return None, spent


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--pause-ms",
        type=int,
        default=400,
        help="the mid-sentence pause (shorter than vad_silence_ms, 600, which ends any turn)",
    )
    args = ap.parse_args()
    info = _perf.machine()
    print(_perf.describe(info))
    settings = Settings(end_of_turn_model=True)
    tts = PiperTTS(threads=1)
    stt = FasterWhisperSTT.from_settings(settings)
    vad = registry.create("vad", settings.vad_engine, settings)
    model = load_end_of_turn(settings)
    assert model is not None, "pipecat-ai==1.14.0 is not installed (scripts/setup.sh)"
    rules = {"silence": None, "smart_turn": model}
    tail = np.zeros(SR * 2, np.float32)
    gap = np.zeros(SR * args.pause_ms // 1000, np.float32)
    out: dict[str, dict] = {r: {"end_ms": [], "model_ms": [], "cut": 0, "cuts": []} for r in rules}
    for text in COMPLETE:
        speech = synth(tts, text)
        for rule, m in rules.items():
            at, spent = run_turn(
                np.concatenate([speech, tail]), settings=settings, vad=vad, stt=stt, model=m
            )
            assert at is not None
            speech_ms = len(speech) * 1000 // SR
            out[rule]["end_ms"].append(at - speech_ms)
            out[rule]["model_ms"].append(spent * 1000)
    for first, second in PAUSED:
        a, b = synth(tts, first), synth(tts, second)
        audio = np.concatenate([a, gap, b, tail])
        for rule, m in rules.items():
            at, _ = run_turn(audio, settings=settings, vad=vad, stt=stt, model=m)
            if at is not None and at < (len(a) + len(gap)) * 1000 // SR:
                out[rule]["cut"] += 1
                out[rule]["cuts"].append(f"{first} | {second}")
    summary = {}
    print(
        f"\n{'rule':<11} {'end after speech p50':>21} {'p95':>7} {'model ms':>9} {'false cut-offs':>15}"
    )
    for rule, r in out.items():
        summary[rule] = {
            "end_after_speech_ms_p50": _perf.median(r["end_ms"]),
            "end_after_speech_ms_p95": _perf.pct(r["end_ms"], 0.95),
            "model_ms_median": round(_perf.median(r["model_ms"]), 1),
            "false_cutoffs": f"{r['cut']}/{len(PAUSED)}",
            "cut": r["cuts"],
        }
        s = summary[rule]
        print(
            f"{rule:<11} {s['end_after_speech_ms_p50']:>18.0f} ms {s['end_after_speech_ms_p95']:>4.0f} ms "
            f"{s['model_ms_median']:>9.1f} {s['false_cutoffs']:>15}"
        )
        for c in r["cuts"]:
            print(f"    cut at the pause: {c}")

    def plot(fig) -> None:
        ax = fig.subplots()
        ax.boxplot([out[r]["end_ms"] for r in rules], tick_labels=list(rules))
        ax.set_ylabel("turn end after the speech (ms, audio time)")
        fig.suptitle(f"end of turn: silence rules vs Smart Turn - {_perf.describe(info)}")

    _perf.save(
        "end_of_turn", {"machine": info, "pause_ms": args.pause_ms, "summary": summary}, plot
    )


if __name__ == "__main__":
    main()
