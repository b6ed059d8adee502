"""First audio in a scene of three, as players meet it: voices, noise, switches, both modes.

Each configuration gets its own daemon (embedded models, default cast); all of them run
at once but only one turn is in flight at any moment: conversations alternate between
the daemons, so a noisy machine weighs on every configuration alike and the figures
compare side by side. A conversation is one session with Bram, Mara and Wren; the
player asks the SCENE lines in order, switching characters by name and by topic, with
follow-ups that name nobody. Every conversation is spoken in one voice (Piper and
espeak-ng voices the tests do not use), clean or with white noise at 15 dB SNR, in
push-to-talk as a player does it (audio in real time, the button let go 200 ms after
the speech, the clock starts at the release) or with server VAD (the clock starts at
the last byte of speech, so the silence wait counts). Each question is asked a second
after the reply before it has been received to the end.

Reports first audio p50/p95 per configuration and mode, the per-stage breakdown,
staying with the last character against switching, turns the daemon ended while the
player was still talking, lines heard as nothing (an empty transcript: no reply) and
turns left unanswered, and a distribution plot. Each turn's transcript and route reason
are kept in the results, so a misroute can be read.

    personae bench scene [--configs base,base:before] [--voices piper,en-us+m3,en+f3,en-gb+m2]
                         [--questions 7] [--modes live,vad] [--noise clean,noisy]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from personae.daemon.testing.launcher import Daemon
from personae.sdk import connect
from personae.sdk import protocol as p

sys.path.insert(0, str(Path(__file__).parent))
from voice_to_voice import config_env

HERE = Path(__file__).parent
RESULTS = HERE / "results"
#: (line, who should answer): by name, by topic, and follow-ups that name nobody
SCENE = [
    ("Bram, can you mend a split shield by tomorrow?", "bram"),
    ("How much would that cost me?", "bram"),
    ("Mara, do the town records say who built the old mill?", "mara"),
    ("And when was it abandoned?", "mara"),
    ("Wren, have you seen anyone on the rooftops at night?", "wren"),
    ("Could you carry a letter to the ferry for me?", "wren"),
    ("Bram, is your forge fire ever left burning overnight?", "bram"),
    ("Mara, which maps of the river bend do you keep?", "mara"),
    ("Wren, what do the market traders say about the green lights?", "wren"),
]
MARKS = {
    "conversation.item.input_audio_transcription.completed": "stt",
    "npc.route": "routing",
    "response.output_text.delta": "first_token",
    "response.output_audio.delta": "first_audio",
}
STAGES = ("stt", "routing", "first_token", "first_audio")
STEP = 16000 * 2 // 10  # 100 ms of 16 kHz PCM16


def speak(text: str, voice: str, noisy: bool, seed: int) -> bytes:
    from _speech import speak as tts

    audio = tts(text, voice=voice)
    if noisy:
        rng = np.random.default_rng(seed)
        audio = audio + rng.normal(0, np.sqrt(float(np.mean(audio**2)) / 10**1.5), audio.size)
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


async def conversation(url: str, lines: list[tuple[bytes, str]], vad: bool) -> list[dict]:
    """One session with the three; the marks of each turn, from the release / end of speech."""
    fields = {} if vad else {"turn_detection": None}
    out: list[dict] = []
    last: str | None = None
    async with await connect(url, characters=["bram", "mara", "wren"], **fields) as session:
        quiet = asyncio.Event()

        async def room() -> None:  # server VAD: the microphone keeps sending a quiet room
            while True:
                await quiet.wait()
                await session.append_audio(bytes(STEP))
                await asyncio.sleep(0.1)

        feeder = asyncio.create_task(room()) if vad else None
        try:
            for audio, expected in lines:
                quiet.clear()
                for i in range(0, len(audio), STEP):
                    await session.append_audio(audio[i : i + STEP])
                    await asyncio.sleep(0.1)
                if vad:
                    quiet.set()
                else:
                    for _ in range(2):  # the button is let go 200 ms after the speech
                        await session.append_audio(bytes(STEP))
                        await asyncio.sleep(0.1)
                t0 = time.perf_counter()
                if not vad:
                    await session.commit()
                marks: dict = {"expected": expected, "previous": last}
                while "done" not in marks:
                    # nothing heard (an empty transcript) gets no reply: a short wait
                    unheard = marks.get("transcript") == ""
                    try:
                        event = await session.next_event(timeout=5 if unheard else 90)
                    except TimeoutError:
                        marks["unheard" if unheard else "timeout"] = True
                        break
                    now = (time.perf_counter() - t0) * 1000
                    if event.type == "input_audio_buffer.speech_stopped":
                        # more than one end of speech for one line: the daemon ended the
                        # turn while the player was still talking
                        marks["ends"] = marks.get("ends", 0) + 1
                    key = MARKS.get(event.type)
                    if key and key not in marks:
                        marks[key] = now
                    if isinstance(event, p.NpcRoute) and "character" not in marks:
                        marks["character"] = event.character
                        marks["reason"] = event.reason
                    if (
                        event.type == "conversation.item.input_audio_transcription.completed"
                        and "transcript" not in marks
                    ):  # kept so a misroute can be read: what was heard, why it went there
                        marks["transcript"] = event.transcript
                    if isinstance(event, p.Error):
                        marks.setdefault("errors", []).append(event.error.code)
                    if isinstance(event, p.ResponseDone) and "first_audio" in marks:
                        marks["done"] = now
                marks["cut"] = marks.get("ends", 0) > 1
                marks["switch"] = marks.get("character") not in (None, last)
                last = marks.get("character", last)
                out.append(marks)
                await asyncio.sleep(1.0)
        finally:
            if feeder:
                feeder.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await feeder
    return out


def speculation_counts(ws_url: str) -> dict:
    """The daemon's speculative replies (kept, dropped and why, LLM seconds dropped),
    from its Prometheus metrics: zeros when the configuration has speculation off."""
    import re
    import urllib.request

    http = ws_url.replace("ws://", "http://", 1).split("/v1/")[0]
    with urllib.request.urlopen(f"{http}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict = {"kept": 0, "dropped": {}, "dropped_seconds": 0.0, "dropped_tokens": 0}
    for line in text.splitlines():
        if m := re.match(
            r'\w*speculative_replies_total\{outcome="(\w+)",reason="(\w*)"\} (\S+)', line
        ):
            n = int(float(m[3]))
            if m[1] == "kept":
                out["kept"] += n
            else:
                out["dropped"][m[2]] = out["dropped"].get(m[2], 0) + n
        elif m := re.match(r"\w*speculation_dropped_seconds_total (\S+)", line):
            out["dropped_seconds"] = round(float(m[1]), 2)
        elif m := re.match(r"\w*speculation_dropped_tokens_total (\S+)", line):
            out["dropped_tokens"] = int(float(m[1]))
    return out


def pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def summary(samples: list[dict]) -> dict:
    got = [s for s in samples if "first_audio" in s]
    first = [s for s in got if s["previous"] is not None]  # a session's first turn neither
    stay = [s["first_audio"] for s in first if not s["switch"]]
    switch = [s["first_audio"] for s in first if s["switch"]]
    return {
        "turns": len(samples),
        "answered": len(got),
        "cut": sum(1 for s in samples if s.get("cut")),
        "unheard": sum(1 for s in samples if s.get("unheard")),
        "timeouts": sum(1 for s in samples if s.get("timeout")),
        "routed_as_expected": sum(1 for s in got if s.get("character") == s["expected"]),
        **{
            st: {
                "p50": pct([s[st] for s in got if st in s], 50),
                "p95": pct([s[st] for s in got if st in s], 95),
            }
            for st in STAGES
        },
        "stay_p50": pct(stay, 50),
        "switch_p50": pct(switch, 50),
        "switch_over_stay": (pct(switch, 50) / pct(stay, 50)) if stay and switch else None,
    }


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [
        (f"{c}\n{m}", [s["first_audio"] / 1000 for s in ss if "first_audio" in s])
        for c, by in results.items()
        for m, ss in by.items()
    ]
    fig, ax = plt.subplots(figsize=(8, 1 + 0.7 * len(rows)))
    ax.boxplot([r[1] for r in rows], orientation="horizontal")
    ax.set_yticks(range(1, len(rows) + 1), [r[0] for r in rows])
    ax.axvline(0.5, color="green", linestyle=":", label="500 ms target (p50)")
    ax.axvline(1.0, color="orange", linestyle=":", label="1 s target (p95)")
    ax.set_xlabel("first reply audio after the release / end of speech (s)")
    ax.set_title("Scene of three: voices, noise, switches")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


async def run(urls: dict[str, str], plan: list[tuple[str, bool, str]], lines: dict) -> dict:
    results: dict[str, dict[str, list]] = {c: {} for c in urls}
    for n, (voice, noisy, mode) in enumerate(plan):
        order = list(urls) if n % 2 == 0 else list(reversed(urls))  # who goes first alternates
        for config in order:
            label = f"{voice}, {'noise' if noisy else 'clean'}, {mode}"
            print(f"[{n + 1}/{len(plan)}] {config}: {label} ...", file=sys.stderr, flush=True)
            got = await conversation(urls[config], lines[voice, noisy], vad=mode == "vad")
            for s in got:
                s.update(voice=voice, noisy=noisy)
            results[config].setdefault(mode, []).extend(got)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--configs",
        default="base,base:before",
        help="daemon configurations, as voice_to_voice's --configs",
    )
    ap.add_argument("--voices", default="piper,en-us+m3,en+f3,en-gb+m2")
    ap.add_argument("--questions", type=int, default=7, help="lines of the scene per conversation")
    ap.add_argument("--modes", default="live,vad", help="live (push to talk in real time), vad")
    ap.add_argument("--noise", default="clean,noisy")
    ap.add_argument("--out", type=Path, default=RESULTS / "scene")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    voices = args.voices.split(",")
    noise = [n == "noisy" for n in args.noise.split(",")]
    scene = SCENE[: args.questions]
    lines = {
        (v, noisy): [(speak(text, v, noisy, seed=i), who) for i, (text, who) in enumerate(scene)]
        for v in voices
        for noisy in noise
    }
    plan = [(v, noisy, m) for v in voices for noisy in noise for m in args.modes.split(",")]
    load_before = os.getloadavg()
    with contextlib.ExitStack() as stack:
        urls = {}
        for config in args.configs.split(","):
            print(f"starting daemon: {config} ...", file=sys.stderr)
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            d = stack.enter_context(Daemon(state_dir=tmp, env=config_env(config)))
            urls[config] = d.ws
        results = asyncio.run(run(urls, plan, lines))
        speculation = {c: speculation_counts(urls[c]) for c in urls}
    data = {
        "machine": f"{os.cpu_count()} cores",
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "summary": {c: {m: summary(ss) for m, ss in by.items()} for c, by in results.items()},
        "speculation": speculation,
        "samples": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(data, indent=1))
    plot(results, args.out.with_suffix(".png"))
    print(f"\nfirst audio (ms) p50/p95; load {load_before[0]:.1f} -> {data['load_after'][0]:.1f}")
    for c, sp in speculation.items():
        if sp["kept"] or sp["dropped"]:
            print(f"{c}: speculation kept {sp['kept']}, dropped {sp['dropped']}, "
                  f"{sp['dropped_seconds']} s of LLM time dropped")  # fmt: skip
    for c, by in data["summary"].items():
        for m, s in by.items():
            fa = s["first_audio"]
            ratio = f"{s['switch_over_stay']:.2f}x" if s["switch_over_stay"] else "-"
            stages = "  ".join(
                f"{st} {s[st]['p50']:.0f}" for st in STAGES if s[st]["p50"] is not None
            )
            print(
                f"{c:<16}{m:<6}{s['answered']}/{s['turns']}  first audio {fa['p50']:.0f}/{fa['p95']:.0f}"
                f"  switch/stay {ratio}  cut {s['cut']}  unheard {s['unheard']}  timeouts {s['timeouts']}"
                f"  routed {s['routed_as_expected']}  [{stages}]"
            )


if __name__ == "__main__":
    main()
