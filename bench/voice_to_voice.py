"""Voice-to-voice latency: from the player's last byte of audio to the first byte of reply audio.

Starts one daemon per configuration (by default whisper base, the embedded default,
with its encoder on a 10 s window and on whisper's full 30 s, without transcription
at the pause, on one thread, beside whisper tiny.en) and runs the
same spoken questions through each, in
push-to-talk mode (the turn ends at the commit, so the figure is the pipeline's own),
push-to-talk as a player does it (audio in real time, the button let go 200 ms after
the speech: what the daemon did while the player talked shows) and with server VAD
(the turn ends after the configured silence, as a player hears it).
Prints p50/p95 with a per-stage breakdown, the daemon's resident memory, and writes
JSON and a PNG plot to bench/results/.

    personae bench voice_to_voice [--turns 20] [--configs base,base:window=0,tiny.en] [--url ws://...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

from personae.daemon.testing.launcher import Daemon
from personae.sdk import connect
from personae.sdk import protocol as p

QUESTIONS = [
    "Hey Mara, where can I find an old map of the river?",
    "Bram, can you fix my sword before nightfall?",
    "Wren, have you heard any rumours about the mill?",
    "Mara, what do the town records say about the bridge?",
    "Bram, how much for a new horseshoe?",
]
#: one conversation with Bram: the follow-ups name nobody, so he keeps answering
CONVERSATION = [
    "Bram, can you fix my sword before nightfall?",
    "How long will that take?",
    "And what do you charge for it?",
    "Have you seen the lights on the old mill?",
    "Who do you think is carrying them?",
    "Is the bridge safe to cross after dark?",
    "Thank you. I will come back tomorrow.",
]
STAGES = ["stt", "routing", "first_token", "first_sentence_audio", "first_audio_chunk"]
MODES = ("push_to_talk", "push_to_talk_live", "server_vad", "conversation")
RESULTS = Path(__file__).parent / "results"


def synthesize(texts: list[str]) -> dict[str, bytes]:
    """The player's questions, spoken by Piper at test time (16 kHz PCM16)."""
    from personae.daemon import audio as pcm
    from personae.daemon.characters import VoiceConfig
    from personae.daemon.engines.tts_piper import PiperTTS
    from personae.daemon.settings import Settings

    tts = PiperTTS.from_settings(Settings())
    out = {}
    for text in texts:
        chunks = [
            pcm.resample(c.pcm, c.sample_rate, 16000) for c in tts.synthesize(text, VoiceConfig())
        ]
        out[text] = b"".join(c.astype("<i2").tobytes() for c in chunks)
    return out


MARKS = {
    "conversation.item.input_audio_transcription.completed": "stt",
    "npc.route": "routing",
    "response.output_text.delta": "first_token",
    "npc.sentence": "first_sentence_audio",
    "response.output_audio.delta": "first_audio_chunk",
}


async def one_turn(url: str, audio: bytes, *, vad: bool, live: bool = False) -> dict[str, float]:
    """Push-to-talk: audio sent at once, the clock starts at the commit; `live`: sent in
    real time, then 200 ms of silence, then the commit (the clock starts there). Server
    VAD: the player talks in real time (100 ms chunks every 100 ms), then silence keeps
    flowing; the clock starts at the last byte of speech, so the figure includes the
    pause the daemon waits for before it decides the turn is over (a turn it ends while
    the player is still talking counts in `cut`; the reply measured is the next one)."""
    fields = {} if vad else {"turn_detection": None}
    async with await connect(url, **fields) as session:
        t0 = 0.0
        stop = asyncio.Event()

        async def talk() -> None:
            nonlocal t0
            step = 16000 * 2 // 10
            for i in range(0, len(audio), step):
                await session.append_audio(audio[i : i + step])
                await asyncio.sleep(0.1)
            t0 = time.perf_counter()
            while not stop.is_set():  # the room stays quiet while the character answers
                await session.append_audio(bytes(step))
                await asyncio.sleep(0.1)

        if vad:
            feeder = asyncio.create_task(talk())
        elif live:
            step = 16000 * 2 // 10
            for i in range(0, len(audio), step):
                await session.append_audio(audio[i : i + step])
                await asyncio.sleep(0.1)
            for _ in range(2):
                await session.append_audio(bytes(step))
                await asyncio.sleep(0.1)
            t0 = time.perf_counter()
            await session.commit()
        else:
            await session.append_audio(audio, chunk_ms=100)
            t0 = time.perf_counter()
            await session.commit()
        marks: dict[str, float] = {}
        try:
            while True:
                event = await session.next_event(timeout=120)
                if isinstance(event, p.Error):
                    raise RuntimeError(event.error.message)
                if not t0:
                    # the daemon ended the turn before the player stopped talking: the
                    # rest is a turn of its own, whose reply is the one the player waits for
                    if event.type == "input_audio_buffer.speech_stopped":
                        marks["cut"] = marks.get("cut", 0) + 1
                    continue
                now = (time.perf_counter() - t0) * 1000
                key = MARKS.get(event.type)
                if key and key not in marks:
                    marks[key] = now
                if isinstance(event, p.ResponseDone):
                    marks["done"] = now
                    return marks
        finally:
            stop.set()
            if vad:
                await feeder


async def conversation(url: str, audio: dict[str, bytes], turns: int) -> list[dict[str, float]]:
    """One session, push to talk, turn after turn with Bram, each question asked once
    his reply has been heard to the end; the marks of every turn after the first."""
    marks_per_turn = []
    async with await connect(url, turn_detection=None) as session:
        for i in range(turns):
            await session.append_audio(audio[CONVERSATION[i % len(CONVERSATION)]], chunk_ms=100)
            t0 = time.perf_counter()
            await session.commit()
            marks: dict[str, float] = {}
            while True:
                event = await session.next_event(timeout=120)
                if isinstance(event, p.Error):
                    raise RuntimeError(event.error.message)
                now = (time.perf_counter() - t0) * 1000
                key = MARKS.get(event.type)
                if key and key not in marks:
                    marks[key] = now
                if isinstance(event, p.NpcRoute):
                    marks["bram"] = float(event.character == "bram")
                if isinstance(event, p.ResponseDone):
                    marks["done"] = now
                    break
            if i:
                marks_per_turn.append(marks)
            # response.done comes as the last audio is sent, up to audio_lead_ms (1 s)
            # before the player has heard it: the next question comes after that
            await asyncio.sleep(1.0)
    return marks_per_turn


def summarize(samples: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    out = {}
    for key in [*STAGES, "done"]:
        values = sorted(s[key] for s in samples if key in s)
        if values:
            out[key] = {
                "p50": statistics.median(values),
                "p95": values[min(len(values) - 1, round(0.95 * (len(values) - 1)))],
            }
    return out


async def run_config(
    url: str,
    pid: int | None,
    audio: dict[str, bytes],
    turns: int,
    vad_turns: int,
    live_turns: int = 0,
    conversation_turns: int = 0,
):
    proc = psutil.Process(pid) if pid else None
    await one_turn(url, next(iter(audio.values())), vad=False)  # warm the path
    texts = [q for q in QUESTIONS if q in audio]  # the conversation has its own lines
    ptt = [await one_turn(url, audio[texts[i % len(texts)]], vad=False) for i in range(turns)]
    live = [
        await one_turn(url, audio[texts[i % len(texts)]], vad=False, live=True)
        for i in range(live_turns)
    ]
    vad = [await one_turn(url, audio[texts[i % len(texts)]], vad=True) for i in range(vad_turns)]
    conv = await conversation(url, audio, conversation_turns) if conversation_turns else []
    rss = proc.memory_info().rss / 2**20 if proc else None
    samples = {
        "push_to_talk": ptt,
        "push_to_talk_live": live,
        "server_vad": vad,
        "conversation": conv,
    }
    return {
        **{mode: summarize(samples[mode]) for mode in MODES},
        "rss_mb": rss,
        "samples": samples,
    }


def config_env(config: str) -> dict[str, str]:
    """ "base:no-early:threads=1" -> the daemon's environment for that configuration.

    The first part is the STT model; then `no-early` (no transcription while the player
    speaks), `window=S` (whisper's encoder window in seconds, 0 = the full 30 s),
    `threads=N` (CPU threads per engine), `llm=NAME` (LLM engine), `complete=MS`
    (server VAD: the silence that ends a turn whose transcript reads as finished, 0 = off,
    so every turn waits the full silence), `no-reuse` (no prompt-prefix reuse: every
    reply prefills its whole prompt), `no-clause` (speech starts at the first full
    sentence, not the first clause or words), `no-prime` (the next prompt is not
    prefilled while a reply plays), `no-first-piece` (speech starts at the first clause,
    not the first words), `no-eot` (no end-of-turn model: silence rules alone, the default), `eot` (Smart Turn
    asked at a short pause),
    `no-warm` (the scene is not warmed at the session's start), `lore=N` (tokens of
    lore in each prompt, 0 = none) or `before` (all of the
    latency work of issues 7 and 14 off: no-early, window=0, complete=0, no-reuse,
    no-clause, no-prime, no-eot, no-warm, the old prompt layout)."""
    model, *flags = config.split(":")
    env = {"PERSONAE_STT_MODEL": model, "PERSONAE_STT_EARLY": "true"}
    for flag in flags:
        key, _, value = flag.partition("=")
        if flag == "no-early":
            env["PERSONAE_STT_EARLY"] = "false"
        elif flag == "spec":  # the reply started at the pause (speculation.py)
            env["PERSONAE_SPECULATIVE_REPLY"] = "true"
        elif key == "window":
            env["PERSONAE_STT_WINDOW_S"] = value
        elif key == "threads":
            env["PERSONAE_THREADS"] = value
        elif key == "llm":
            env["PERSONAE_LLM_ENGINE"] = value
        elif key == "complete":
            env["PERSONAE_VAD_SILENCE_COMPLETE_MS"] = value
        elif key == "lore":  # tokens of lore in each prompt (0: none)
            env["PERSONAE_LORE_BUDGET_TOKENS"] = value
        elif flag == "no-reuse":
            env["PERSONAE_LLM_PREFIX_CACHE_TOKENS"] = "0"
            env["PERSONAE_LLAMACPP_PROMPT_CACHE"] = "false"
        elif flag == "no-clause":
            env["PERSONAE_TTS_FIRST_CLAUSE_CHARS"] = "0"
            env["PERSONAE_TTS_FIRST_PIECE_EARLY"] = "false"
        elif flag == "no-first-piece":
            env["PERSONAE_TTS_FIRST_PIECE_EARLY"] = "false"
        elif flag == "no-eot":
            env["PERSONAE_END_OF_TURN_MODEL"] = "false"
        elif flag == "eot":
            env["PERSONAE_END_OF_TURN_MODEL"] = "true"
        elif flag == "no-warm":
            env["PERSONAE_LLM_WARM_SCENE_MAX"] = "0"
        elif flag == "no-prime":
            env["PERSONAE_LLM_PRIME_HISTORY"] = "false"
        elif flag == "before":
            env |= {
                "PERSONAE_STT_EARLY": "false",
                "PERSONAE_STT_WINDOW_S": "0",
                "PERSONAE_VAD_SILENCE_COMPLETE_MS": "0",
                "PERSONAE_LLM_PREFIX_CACHE_TOKENS": "0",
                "PERSONAE_LLAMACPP_PROMPT_CACHE": "false",
                "PERSONAE_TTS_FIRST_CLAUSE_CHARS": "0",
                "PERSONAE_TTS_FIRST_PIECE_EARLY": "false",
                "PERSONAE_END_OF_TURN_MODEL": "false",
                "PERSONAE_LLM_WARM_SCENE_MAX": "0",
                "PERSONAE_PROMPT_CONTEXT_LATE": "false",
                "PERSONAE_LLM_PRIME_HISTORY": "false",
            }
        else:
            raise SystemExit(f"unknown configuration flag {flag!r} in {config!r}")
    return env


def plot(results: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sum(1 for res in results.values() for m in MODES if res.get(m))
    fig, ax = plt.subplots(figsize=(9, max(4.5, 1.5 + 0.4 * rows)))
    labels = []
    for name, res in results.items():
        for mode in (m for m in MODES if res.get(m)):
            summary = res[mode]
            y = len(labels)
            labels.append(f"{name}\n{mode.replace('_', ' ')}")
            prev = 0.0
            for k, stage in enumerate(STAGES):
                if stage not in summary:
                    continue
                v = summary[stage]["p50"]
                ax.barh(
                    y,
                    v - prev,
                    left=prev,
                    color=plt.cm.viridis(k / len(STAGES)),
                    label=stage.replace("_", " ") if y == 0 else None,
                )
                prev = v
            ax.text(prev + 20, y, f"{prev:.0f} ms", va="center", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ms after the player's last byte (p50, cumulative by stage)")
    ax.set_title("personae voice-to-voice latency")
    ax.set_xlim(0, ax.get_xlim()[1] * 1.12)  # room for the labels
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=len(STAGES))
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--turns", type=int, default=20, help="push-to-talk turns per configuration")
    ap.add_argument(
        "--live-turns",
        type=int,
        default=10,
        help="push-to-talk turns spoken in real time per configuration",
    )
    ap.add_argument("--vad-turns", type=int, default=10, help="server-VAD turns per configuration")
    ap.add_argument(
        "--conversation-turns",
        type=int,
        default=7,
        help="turns of one push-to-talk conversation with Bram (the first is not counted)",
    )
    ap.add_argument(
        "--configs",
        default="base,base:window=0,base:no-early,base:threads=1,tiny.en",
        help="daemon configurations to compare: STT model, then ':no-early' (no "
        "transcription while the player speaks), ':window=S' (encoder window, 0 = 30 s), "
        "':threads=N', ':llm=ENGINE', ':no-reuse', ':no-clause', ':no-prime', ':no-first-piece', "
        "':no-eot', ':eot', ':no-warm', ':spec' (speculative reply on), ':lore=N', ':before' (all of issues 7 and 14's "
        "latency work off), ':complete=MS' (silence that ends a turn that reads "
        "as finished, server VAD; 0 = off)",
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=RESULTS / "voice_to_voice",
        help="where the results go: OUT.json and OUT.png",
    )
    ap.add_argument("--url", help="measure an already running daemon instead")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    audio = synthesize(sorted({*QUESTIONS, *CONVERSATION}))
    results: dict[str, dict] = {}
    if args.url:
        results["running daemon"] = asyncio.run(
            run_config(
                args.url,
                None,
                audio,
                args.turns,
                args.vad_turns,
                args.live_turns,
                args.conversation_turns,
            )
        )
    else:
        for config in args.configs.split(","):
            env = config_env(config)
            print(f"starting daemon: {config} ({env}) ...", file=sys.stderr)
            with tempfile.TemporaryDirectory() as tmp, Daemon(state_dir=Path(tmp), env=env) as d:
                results[config] = asyncio.run(
                    run_config(
                        d.ws,
                        d.process.pid,
                        audio,
                        args.turns,
                        args.vad_turns,
                        args.live_turns,
                        args.conversation_turns,
                    )
                )
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}"
    )
    print(f"\nvoice-to-voice latency (ms), {machine}")
    print(
        f"{'config':<22}{'mode':<19}"
        + "".join(f"{s:>22}" for s in [*STAGES, "done"])
        + f"{'RSS MB':>9}"
    )
    for name, res in results.items():
        for mode in (m for m in MODES if res.get(m)):
            cells = "".join(
                f"{res[mode][s]['p50']:>11.0f}/{res[mode][s]['p95']:<10.0f}"
                if s in res[mode]
                else f"{'-':>22}"
                for s in [*STAGES, "done"]
            )
            rss = f"{res['rss_mb']:>9.0f}" if res["rss_mb"] else ""
            print(f"{name:<22}{mode:<19}{cells}{rss}")
    print("(each cell: p50/p95 of the time from the player's last byte to that stage)")
    for name, res in results.items():
        conv = res["samples"]["conversation"]
        if conv and not all(sample.get("bram") for sample in conv):
            print(f"{name}: the router gave some follow-ups to another character")
    for name, res in results.items():
        cut = sum(1 for sample in res["samples"]["server_vad"] if sample.get("cut"))
        if cut:
            print(f"{name}: {cut} server-VAD turns ended before the player stopped talking")
    out = {"machine": machine, "python": sys.version.split()[0], "results": results}
    json_path, png_path = args.out.with_suffix(".json"), args.out.with_suffix(".png")
    json_path.write_text(json.dumps(out, indent=1))
    plot(results, png_path)
    print(f"wrote {json_path} and {png_path}")


if __name__ == "__main__":
    main()
