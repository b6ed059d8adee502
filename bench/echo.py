"""Echo: does the character's own voice, back through the player's microphone, barge in?

Replies are the cast's lines from the Hollowmere scripts (training/examples/hollowmere/
scripts), spoken in each character's own voice by the daemon's TTS engines (Piper for
Bram and Mara, espeak-ng for Wren). Each is played into a room (daemon/testing/
echo_room.py): 100-300 ms delay, -6 to -20 dB, early reflections, a 0.25 s reverberant
tail, a noise floor. The microphone then goes through what the listener runs, the echo
check (daemon/session/echo.py) and the endpointer with the silero VAD, on a simulated
clock (the audio and the VAD are real; nothing waits for wall time). Every reply gets a
fresh session: the echo's delay is not yet known, the hardest case.

Cases, side by side with the echo check on and off:

- echo alone: a false barge-in is any turn started (target: 0 with the check on);
- the player over the echo: a player's line from the scripts (Piper or espeak-ng
  voices) starts at a random point of the reply; barged in = a turn starts no earlier
  than the player's first word (target: >= 95% with the check on);
- the player with no echo (headphones), check off: today's barge-in latency, measured
  from the player's first word to the moment the turn starts (barge-in fires),
  in audio time, the echo check's buffering included;
- no echo path, the player starting within a second of the reply's end: an echo delay
  found there is the player's own voice taken for echo (their first words are cut from
  the turn); counted (target: 0).

    personae bench echo [--replies 44] [--max-delay-ms 1000] [--seed 19]
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import _perf
import numpy as np

from personae.daemon import audio as pcm
from personae.daemon.characters import default_cast_dir, load_cast
from personae.daemon.engines import registry
from personae.daemon.session.echo import EchoCheck, FarEnd
from personae.daemon.settings import Settings
from personae.daemon.testing.echo_room import Case, Room, simulate

SCRIPTS = Path(__file__).resolve().parents[1] / "training/examples/hollowmere/scripts"
LINE = re.compile(r"^(BRAM|MARA|WREN|PLAYER): (.+)$")
PLAYER_VOICES = ["piper", "en-us+m3", "en-gb+f2", "en-us+f4", "en-gb+m1"]
RATE = 24000  # the session's output rate (the default)


def script_lines() -> tuple[list[tuple[str, str]], list[str]]:
    """(character, line) of at least 8 words, and player lines of at least 3."""
    cast, player = [], []
    for path in sorted(SCRIPTS.glob("*.script")):
        for raw in path.read_text().splitlines():
            m = LINE.match(raw.strip())
            if not m:
                continue
            who, text = m.group(1).lower(), m.group(2).strip()
            if who == "player" and len(text.split()) >= 3:
                player.append(text)
            elif who != "player" and len(text.split()) >= 8:
                cast.append((who, text))
    return cast, player


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--replies", type=int, default=44)
    ap.add_argument("--max-delay-ms", type=int, default=Settings().echo_max_delay_ms)
    ap.add_argument("--seed", type=int, default=19, help="which lines, rooms and moments")
    args = ap.parse_args()
    info = _perf.machine()
    print(_perf.describe(info))
    settings = Settings()
    vad = registry.create("vad", settings.vad_engine, settings)
    engines: dict = {}  # by name, as the cast's voices need them (Wren's is Kokoro)
    cast = load_cast([default_cast_dir()])
    cast_lines, player_lines = script_lines()
    rng = np.random.default_rng(args.seed)
    picks = rng.choice(len(cast_lines), size=min(args.replies, len(cast_lines)), replace=False)

    def say(text: str, engine: str, voice, rate: int) -> np.ndarray:
        if engine not in engines:
            engines[engine] = registry.create("tts", engine, settings)
        chunks = list(engines[engine].synthesize(text, voice))
        x = np.concatenate([c.pcm for c in chunks])
        return pcm.resample(x, chunks[0].sample_rate, rate)

    from personae.daemon.characters import VoiceConfig

    rows = []
    started = time.monotonic()
    for n, i in enumerate(picks):
        who, text = cast_lines[i]
        voice = cast[who].voice
        reply = say(text, voice.engine, voice, RATE).astype(np.int16)
        p_text = player_lines[int(rng.integers(len(player_lines)))]
        p_voice = PLAYER_VOICES[n % len(PLAYER_VOICES)]
        p_cfg = (
            VoiceConfig(engine="piper")
            if p_voice == "piper"
            else VoiceConfig(engine="espeak", voice=p_voice)
        )
        speech = pcm.int16_to_float32(say(p_text, p_cfg.engine, p_cfg, 16000).astype(np.int16))
        reply_s = len(reply) / RATE
        room = Room(
            delay_ms=float(rng.uniform(100, 300)),
            gain_db=float(rng.uniform(-20, -6)),
            seed=int(n),
        )
        at = float(rng.uniform(0.3, max(0.4, reply_s - 0.8)))
        alone = Case(reply, RATE, room)
        over = Case(reply, RATE, room, speech, at)
        quiet = Case(reply, RATE, Room(gain_db=-200.0, seed=n), speech, at)
        # no echo path, the player starting as the reply ends: a delay "found" there is
        # the player's own voice taken for echo, and their first words are cut
        tail_at = max(0.0, reply_s + float(rng.uniform(-1.0, 0.5)))
        tail = Case(reply, RATE, Room(gain_db=-200.0, seed=n), speech, tail_at)
        row = {
            "character": who,
            "reply_s": round(reply_s, 2),
            "delay_ms": round(room.delay_ms),
            "gain_db": round(room.gain_db, 1),
            "player_voice": p_voice,
            "speech_at_s": round(at, 2),
        }
        for mode, on in (("off", False), ("on", True)):
            kw = {"echo_check": on, "max_delay_ms": args.max_delay_ms}
            a = simulate(alone, vad, **kw)
            o = simulate(over, vad, **kw)
            q = simulate(quiet, vad, **kw)
            assert o.speech_ms is not None and q.speech_ms is not None
            tail_check = EchoCheck(FarEnd(clock=lambda: 0.0), max_delay_ms=args.max_delay_ms)
            simulate(tail, vad, check=tail_check, **kw)
            row[mode] = {
                "false_barge_in": a.barge_in_ms is not None,
                "barged_in": o.barge_in_ms is not None and o.barge_in_ms >= o.speech_ms,
                "latency_ms": (
                    o.latency_ms
                    if o.barge_in_ms is not None and o.barge_in_ms >= o.speech_ms
                    else None
                ),
                "headphones_latency_ms": q.latency_ms,
                "no_echo_delay_found": on and tail_check.delay is not None,
            }
        rows.append(row)
        print(
            f"[{n + 1}/{len(picks)}] {who} {reply_s:.1f} s, room {row['delay_ms']} ms "
            f"{row['gain_db']} dB, player at {at:.1f} s: "
            + "  ".join(
                f"{m}: false={row[m]['false_barge_in']} barged={row[m]['barged_in']} "
                f"lat={row[m]['latency_ms']}"
                for m in ("off", "on")
            ),
            flush=True,
        )
    summary = {}
    for mode in ("off", "on"):
        r = [row[mode] for row in rows]
        lat = [x["latency_ms"] for x in r if x["latency_ms"] is not None]
        quiet = [x["headphones_latency_ms"] for x in r if x["headphones_latency_ms"] is not None]
        summary[mode] = {
            "false_barge_ins": f"{sum(x['false_barge_in'] for x in r)}/{len(r)}",
            "barge_ins": f"{sum(x['barged_in'] for x in r)}/{len(r)}",
            "barge_in_rate": round(sum(x["barged_in"] for x in r) / len(r), 3),
            "latency_ms_p50": _perf.median(lat),
            "latency_ms_p95": _perf.pct(lat, 0.95),
            "headphones_latency_ms_p50": _perf.median(quiet),
            "headphones_latency_ms_p95": _perf.pct(quiet, 0.95),
            "no_echo_delays_found": f"{sum(x['no_echo_delay_found'] for x in r)}/{len(r)}",
        }
    print(
        f"\n{'check':<6} {'false barge-ins':>16} {'barge-ins':>10} {'lat p50':>8} {'p95':>6}"
        f" {'no-echo p50':>12} {'p95':>6} {'no-echo delays':>15}"
    )
    for mode, s in summary.items():
        print(
            f"{mode:<6} {s['false_barge_ins']:>16} {s['barge_ins']:>10} "
            f"{s['latency_ms_p50']:>8.0f} {s['latency_ms_p95']:>6.0f} "
            f"{s['headphones_latency_ms_p50']:>12.0f} {s['headphones_latency_ms_p95']:>6.0f}"
            f" {s['no_echo_delays_found']:>15}"
        )
    print(f"{time.monotonic() - started:.0f} s")

    def plot(fig) -> None:
        ax1, ax2 = fig.subplots(1, 2)
        for mode, color in (("off", "tab:red"), ("on", "tab:blue")):
            xs = [row["gain_db"] for row in rows if row[mode]["latency_ms"] is not None]
            ys = [row[mode]["latency_ms"] for row in rows if row[mode]["latency_ms"] is not None]
            ax1.scatter(xs, ys, label=f"echo check {mode}", color=color, s=14)
        ax1.set_xlabel("echo level (dB)")
        ax1.set_ylabel("barge-in after the player's first word (ms)")
        ax1.legend()
        labels = ["false barge-ins\n(echo alone)", "barge-ins\n(player over echo)"]
        for k, mode in enumerate(("off", "on")):
            vals = [
                sum(row[mode]["false_barge_in"] for row in rows),
                sum(row[mode]["barged_in"] for row in rows),
            ]
            ax2.bar(np.arange(2) + 0.4 * k, vals, width=0.4, label=f"check {mode}")
        ax2.set_xticks(np.arange(2) + 0.2, labels)
        ax2.set_ylabel(f"of {len(rows)} replies")
        ax2.legend()
        fig.suptitle(f"echo check - {_perf.describe(info)}")

    _perf.save(
        "echo" if args.seed == 19 else f"echo-seed{args.seed}",
        {
            "machine": info,
            "max_delay_ms": args.max_delay_ms,
            "seed": args.seed,
            "summary": summary,
            "rows": rows,
        },
        plot,
    )


if __name__ == "__main__":
    main()
