"""What sending a reply's first words to TTS early costs in naturalness, and gains in time.

Each typical character reply is cut three ways, as its text would stream from the LLM:

- sentence:    whole sentences (no early piece);
- clause:      the first piece at a clause mark once 16 characters long
               (`tts_first_piece_early=false`, the default before issue 14);
- first_piece: the first piece at the first comma, before a conjunction, or after
               about five words (`tts_first_piece_early`, the default now).

Each piece is synthesised with the bundled Piper voice and the pieces are joined as the
player hears them; the embedded faster-whisper (whisper-base int8) transcribes the
result, and the word error rate against the reply's text says how much the cut costs in
intelligibility. The time to first audio is Piper's synthesis time of the first piece
(median of --repeats), all three side by side in one run. Prints a table, writes
bench/results/first_piece.json and .png.

    personae bench first_piece [--repeats 3]
"""

from __future__ import annotations

import argparse
import re
import time

import _perf
import numpy as np

from personae.daemon import audio as pcm
from personae.daemon.characters import VoiceConfig
from personae.daemon.engines.stt_faster_whisper import FasterWhisperSTT
from personae.daemon.engines.tts_piper import PiperTTS
from personae.daemon.session.splitter import SentenceSplitter, spoken_text
from personae.daemon.settings import Settings

REPLIES = [
    "Aye, I can fix your sword before nightfall, if you leave it with me now.",
    "The old map of the river is kept in the town hall, behind the clerk's desk.",
    "I have heard the lights on the mill come back every night since the flood.",
    "Come back tomorrow morning and I will have the horseshoe ready for you.",
    "Nobody crosses the bridge after dark, because the planks are rotten through.",
    "Well, the captain of the guard drinks at the Red Lion most evenings.",
    "I sell bread, cheese and a little honey when the bees are kind to me.",
    "You should ask Mara about the records, she keeps every letter the town ever wrote.",
    "That blade has seen better days, but the steel is still good and true.",
    "My father built this forge with his own hands, and I will not sell it.",
    "Hello there, traveller. What brings you to our quiet little town?",
    "I would not go near the mill at night, not for all the silver in the valley.",
]
MODES = {
    "sentence": {},
    "clause": {"first_clause_chars": 16},
    "first_piece": {"first_clause_chars": 16, "first_words": 5},
}


def pieces(text: str, **kw: int) -> list[str]:
    """`text` cut as the reply loop cuts it, fed in 3-character deltas like LLM tokens."""
    s = SentenceSplitter(**kw)
    out: list[str] = []
    for i in range(0, len(text), 3):
        out += s.push(text[i : i + 3])
    return out + s.flush()


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]+", " ", text.lower().replace("’", "'")).split()


def wer(ref: str, hyp: str) -> tuple[int, int]:
    """(word edits, reference words)."""
    r, h = words(ref), words(hyp)
    d = list(range(len(h) + 1))
    for i, rw in enumerate(r, 1):
        prev, d[0] = d[0], i
        for j, hw in enumerate(h, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (rw != hw))
    return d[len(h)], len(r)


def synth(tts: PiperTTS, text: str) -> tuple[np.ndarray, float]:
    """16 kHz float audio of `text` and how long Piper took."""
    t0 = time.perf_counter()
    chunks = list(tts.synthesize(spoken_text(text), VoiceConfig()))
    took = time.perf_counter() - t0
    audio = np.concatenate(
        [pcm.resample(c.pcm.astype(np.float32) / 32768, c.sample_rate, 16000) for c in chunks]
    )
    return audio.astype(np.float32), took


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeats", type=int, default=3, help="timings of each first piece")
    args = ap.parse_args()
    info = _perf.machine()
    print(_perf.describe(info))
    settings = Settings()
    tts = PiperTTS(threads=1)
    stt = FasterWhisperSTT.from_settings(settings)
    synth(tts, "Warming up.")
    rows: dict[str, dict] = {
        m: {"edits": 0, "words": 0, "first_ms": [], "replies": []} for m in MODES
    }
    for reply in REPLIES:
        for mode, kw in MODES.items():
            cut = pieces(reply, **kw)
            audio = np.concatenate([synth(tts, piece)[0] for piece in cut])
            heard = stt.transcribe(audio).text
            edits, n = wer(reply, heard)
            first = _perf.median([synth(tts, cut[0])[1] * 1000 for _ in range(args.repeats)])
            row = rows[mode]
            row["edits"] += edits
            row["words"] += n
            row["first_ms"].append(first)
            row["replies"].append(
                {"pieces": cut, "heard": heard, "edits": edits, "first_ms": round(first, 1)}
            )
    summary = {}
    print(
        f"\n{'split':<12} {'WER':>6} {'first audio p50':>16} {'p95':>7} {'first piece words':>18}"
    )
    for mode, row in rows.items():
        first_words = _perf.median([len(words(r["pieces"][0])) for r in row["replies"]])
        summary[mode] = {
            "wer": round(row["edits"] / row["words"], 4),
            "first_audio_ms_p50": round(_perf.median(row["first_ms"]), 1),
            "first_audio_ms_p95": round(_perf.pct(row["first_ms"], 0.95), 1),
            "first_piece_words_median": first_words,
        }
        s = summary[mode]
        print(
            f"{mode:<12} {s['wer']:>6.1%} {s['first_audio_ms_p50']:>13.0f} ms "
            f"{s['first_audio_ms_p95']:>4.0f} ms {first_words:>18}"
        )
    info["load_avg_1_5_15_end"] = [round(x, 2) for x in __import__("os").getloadavg()]
    print(f"load average at end {info['load_avg_1_5_15_end'][0]:.1f}")

    def plot(fig) -> None:
        a, b = fig.subplots(1, 2)
        names = list(summary)
        a.bar(names, [summary[m]["wer"] * 100 for m in names], color="tab:orange")
        a.set_ylabel("word error rate of the reply audio (%)")
        b.boxplot([rows[m]["first_ms"] for m in names], tick_labels=names)
        b.set_ylabel("Piper time to first audio (ms)")
        fig.suptitle(
            f"first piece vs whole sentence ({len(REPLIES)} replies) - {_perf.describe(info)}"
        )

    _perf.save("first_piece", {"machine": info, "summary": summary, "rows": rows}, plot)


if __name__ == "__main__":
    main()
