"""Viseme timing: do the word onsets of `npc.viseme` match where the words are heard?

A real daemon (the embedded models, the default cast: Bram and Mara on Piper, Wren on
espeak-ng) answers questions in each character's voice over its WebSocket. For every
reply, the word onsets carried by its `npc.viseme` events are compared with
faster-whisper's word timestamps on the same reply audio (whisper-base, word-level
timestamps from its cross-attention alignment, beam 5). Words are paired by aligning
the two word sequences (lower case, punctuation dropped); only words both agree on
count. Side by side, from the same replies:

- `npc.viseme`: the TTS engine's own phoneme durations (Piper's duration tensor,
  espeak-ng's phoneme events), as the daemon sends them;
- `npc.sentence` only: what a client could do without visemes, spreading each
  sentence's words over its audio by their length in characters.

Target (issue #19): |onset error| median <= 80 ms and p95 <= 150 ms over >= 50 replies.
The worst pairs are listed with their context, to see what the outliers are.

`--cost` measures instead what the timings cost per clause, side by side: Piper with
its duration output and word alignment against plain Piper, and espeak-ng through the
library in its child process against the `espeak-ng` program per sentence (the
engine before), plus Piper's voice load time with and without the graph edit
(results in visemes-cost.json).

    personae bench visemes [--per-character 18] [--cost]
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _perf
import numpy as np

from personae.daemon import audio as pcm
from personae.daemon.engines.phones import words_of
from personae.daemon.session.splitter import spoken_text

QUESTIONS = [
    *_perf.QUESTIONS,
    "What is the best thing about living here?",
    "Is the road north safe at night?",
    "What do you think of the mayor?",
    "Where does the river go?",
    "Have you ever seen the lights on the hill?",
    "What would you do with a bag of gold?",
    "Can you teach me something useful?",
    "Who was here before you?",
    "What are you afraid of?",
    "What is your favourite meal?",
]
CAST = ("bram", "mara", "wren")


def norm(word: str) -> str:
    return re.sub(r"[^a-z0-9']", "", word.lower().replace("’", "'"))


def pair(ours: list[tuple[str, float]], heard: list[tuple[str, float]]) -> list[tuple[int, int]]:
    """Index pairs of words that both sequences spell the same, in order."""
    a, b = [norm(w) for w, _ in ours], [norm(w) for w, _ in heard]
    m = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return [(x.a + k, x.b + k) for x in m.get_matching_blocks() for k in range(x.size)]


def sentence_only(reply: Any) -> list[tuple[str, float]]:
    """Word onsets a client could guess from npc.sentence alone: each sentence's words
    spread over its audio in proportion to their length in characters."""
    out = []
    for s in reply.sentences:
        words = words_of(spoken_text(s.text))
        total = sum(len(w) + 1 for w in words) or 1
        at = 0
        for w in words:
            out.append((w, s.audio_start_ms + s.audio_duration_ms * at / total))
            at += len(w) + 1
    return out


async def collect(ws: str, per_character: int) -> list[dict[str, Any]]:
    from personae.sdk import connect

    replies = []
    for character in CAST:
        async with await connect(ws, framing="msgpack") as session:
            for q in QUESTIONS[:per_character]:
                await session.add_text(q)
                await session.respond(character=character)
                r = await session.collect_reply(timeout=300)
                if r.status != "completed" or not r.audio:
                    continue
                replies.append(
                    {
                        "character": character,
                        "question": q,
                        "text": r.text,
                        "audio": r.audio,
                        "rate": r.sample_rate,
                        "words": [(w.text, float(w.start_ms)) for w in r.words],
                        "ends": [float(w.start_ms + w.duration_ms) for w in r.words],
                        "baseline": sentence_only(r),
                        "visemes": len(r.visemes),
                    }
                )
                print(f"  {character}: {len(replies)} replies", file=sys.stderr, flush=True)
    return replies


def whisper_words(model: Any, audio: bytes, rate: int) -> list[tuple[str, float, float]]:
    """(word, start ms, end ms) as faster-whisper times them."""
    x = pcm.resample(pcm.pcm16_to_float32(audio), rate, 16000)
    segments, _ = model.transcribe(
        x, language="en", beam_size=5, word_timestamps=True, condition_on_previous_text=False,
        vad_filter=False,
    )  # fmt: skip
    return [
        (w.word.strip(), w.start * 1000, w.end * 1000) for s in segments for w in (s.words or [])
    ]


def voiced_onsets(audio: bytes, rate: int, heard: list[tuple[str, float, float]]) -> list[float]:
    """Each whisper word's start moved forward to the first 10 ms frame inside the word
    with sound in it (30 dB under the reply's loudest frame): whisper's attention-based
    starts fall early after a silence, this one cannot start in one. A diagnosis of
    the reference, not the target's measure."""
    x = pcm.pcm16_to_float32(audio)
    hop = rate // 100
    frames = x[: len(x) // hop * hop].reshape(-1, hop)
    level = np.sqrt(np.mean(frames**2, axis=1) + 1e-12)
    loud = level > level.max() * 10 ** (-30 / 20)
    out = []
    for _, start, end in heard:
        a, b = int(start / 10), max(int(start / 10) + 1, int(end / 10))
        hit = np.flatnonzero(loud[a:b])
        out.append((a + int(hit[0])) * 10.0 if hit.size else start)
    return out


def summary(errors: list[float]) -> dict[str, Any]:
    a = [abs(e) for e in errors]
    return {
        "pairs": len(a),
        "median_abs_ms": round(float(_perf.median(a)), 1),
        "p95_abs_ms": round(float(_perf.pct(a, 95)), 1),
        "mean_signed_ms": round(float(np.mean(errors)), 1) if errors else None,
    }


def cost(repeats: int) -> dict[str, Any]:
    import statistics
    import subprocess

    import onnxruntime as ort
    from piper import PiperVoice, SynthesisConfig

    from personae.daemon.characters import VoiceConfig
    from personae.daemon.engines.tts_espeak import EspeakTTS
    from personae.daemon.engines.tts_piper import PiperTTS, bundled_voice_path

    clause = "Aye, the forge burns hot,"
    t = time.perf_counter()
    timed = PiperTTS(threads=1)
    load_timed = time.perf_counter() - t
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    t = time.perf_counter()
    session = ort.InferenceSession(
        str(bundled_voice_path()), sess_options=opts, providers=["CPUExecutionProvider"]
    )
    load_plain = time.perf_counter() - t
    plain = PiperVoice(session=session, config=timed._voice("default").config)
    espeak = EspeakTTS()

    def plain_piper() -> None:
        for ph in plain.phonemize(clause):
            plain.phoneme_ids_to_audio(plain.phonemes_to_ids(ph), SynthesisConfig())

    def espeak_program() -> None:
        subprocess.run(["espeak-ng", "--stdin", "--stdout", "-b", "1", "-v", "en-us"],
                       input=clause.encode(), capture_output=True, check=True)  # fmt: skip

    ways = {
        "piper with phones": lambda: list(timed.synthesize(clause, VoiceConfig())),
        "piper plain": plain_piper,
        "espeak-ng library (child process) with phones": lambda: list(
            espeak.synthesize(clause, VoiceConfig(engine="espeak"))
        ),
        "espeak-ng program per sentence": espeak_program,
    }
    out: dict[str, Any] = {}
    for name, run in ways.items():
        run()  # warm
        times = []
        for _ in range(repeats):
            # interleaved would be fairer on a loaded machine; each way is short
            t = time.perf_counter()
            run()
            times.append((time.perf_counter() - t) * 1000)
        out[name] = {"median_ms": round(statistics.median(times), 1),
                     "p90_ms": round(_perf.pct(times, 90), 1)}  # fmt: skip
        print(f"{name:48s} {out[name]}", flush=True)
    out["piper voice load s"] = {"with duration output": round(load_timed, 2),
                                 "plain": round(load_plain, 2)}  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--per-character", type=int, default=18, help="replies per character")
    ap.add_argument("--cost", action="store_true", help="time the engines with and without phones")
    ap.add_argument("--repeats", type=int, default=20, help="--cost: runs of each way")
    args = ap.parse_args()
    if args.cost:
        info = _perf.machine()
        result = {"machine": info, "clause": "Aye, the forge burns hot,", **cost(args.repeats)}
        _perf.RESULTS.mkdir(exist_ok=True)
        path = _perf.RESULTS / "visemes-cost.json"
        path.write_text(json.dumps(result, indent=1))
        print(f"wrote {path}")
        return

    from faster_whisper import WhisperModel

    from personae.daemon.engines.stt_faster_whisper import resolve_model_dir
    from personae.daemon.settings import Settings
    from personae.daemon.testing.launcher import Daemon

    info = _perf.machine()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, Daemon(state_dir=Path(tmp)) as daemon:
        print("daemon up; collecting replies", file=sys.stderr, flush=True)
        replies = asyncio.run(collect(daemon.ws, args.per_character))
    model = WhisperModel(
        str(resolve_model_dir(Settings())), device="cpu", compute_type="int8", cpu_threads=2
    )
    rows: list[dict[str, Any]] = []
    errors: dict[str, list[float]] = {}
    for i, r in enumerate(replies):
        heard = whisper_words(model, r["audio"], r["rate"])
        voiced = voiced_onsets(r["audio"], r["rate"], heard)
        engine = "espeak" if r["character"] == "wren" else "piper"
        for method in ("visemes", "sentence_only"):
            ours = r["words"] if method == "visemes" else r["baseline"]
            for a, b in pair(ours, [(w, t) for w, t, _ in heard]):
                err = ours[a][1] - heard[b][1]
                errors.setdefault(method, []).append(err)
                errors.setdefault(f"{method}/{engine}", []).append(err)
                if method != "visemes":
                    continue
                # silence before the word in our timing: a piece's first word, or after
                # a comma; whisper's starts are least sure there
                gap = ours[a][1] - (r["ends"][a - 1] if a else 0.0)
                where = "after_pause" if gap >= 100 else "in_phrase"
                errors.setdefault(f"visemes/{where}", []).append(err)
                errors.setdefault("visemes_vs_voiced_whisper", []).append(ours[a][1] - voiced[b])
                context = " ".join(w for w, _ in ours[max(0, a - 2) : a + 3])
                rows.append({"reply": i, "character": r["character"], "word": ours[a][0],
                             "ours_ms": round(ours[a][1]), "whisper_ms": round(heard[b][1]),
                             "voiced_ms": round(voiced[b]), "error_ms": round(err),
                             "gap_before_ms": round(gap), "context": context})  # fmt: skip
        print(f"  whisper {i + 1}/{len(replies)}", file=sys.stderr, flush=True)
    worst = sorted(rows, key=lambda x: -abs(x["error_ms"]))[:25]
    data = {
        "machine": info,
        "elapsed_s": round(time.monotonic() - started, 1),
        "replies": len(replies),
        "replies_per_character": {c: sum(r["character"] == c for r in replies) for c in CAST},
        "words_timed": sum(len(r["words"]) for r in replies),
        "target": {"median_abs_ms": 80, "p95_abs_ms": 150},
        "results": {k: summary(v) for k, v in sorted(errors.items())},
        "worst": worst,
        "replies_text": [{"character": r["character"], "text": r["text"]} for r in replies],
    }
    for k, v in data["results"].items():
        print(f"{k:24s} {v}")

    def plot(fig: Any) -> None:
        ax = fig.add_subplot(1, 2, 1)
        for k in ("visemes/piper", "visemes/espeak", "visemes/after_pause", "sentence_only"):
            a = np.sort(np.abs(errors.get(k, [])))
            if a.size:
                ax.plot(a, np.arange(1, a.size + 1) / a.size, label=k)
        ax.axvline(80, ls=":", c="grey")
        ax.axvline(150, ls="--", c="grey")
        ax.set_xlim(0, 500)
        ax.set_xlabel("|word onset - whisper's| (ms)")
        ax.set_ylabel("share of words")
        ax.legend()
        ax.set_title(f"{len(replies)} replies, {_perf.describe(info)}", fontsize=8)
        ax2 = fig.add_subplot(1, 2, 2)
        ax2.hist([e for e in errors.get("visemes", []) if abs(e) < 400], bins=80)
        ax2.set_xlabel("npc.viseme onset - whisper onset (ms, signed)")

    _perf.save("visemes", data, plot)


if __name__ == "__main__":
    main()
