"""Unity play-out time (clients/unity/Runtime/Core/Playout.cs), compiled with Mono and
run on a simulated audio thread (tests/clients/csharp/PlayoutHarness.cs): callbacks fire
when their audio is heard, not when it is handed to Unity, and a barge-in's truncate
carries the heard position."""

from __future__ import annotations

import json
import subprocess

import pytest

from personae.sdk import protocol as p
from personae.sdk.framing import decode_client
from tests.clients.tools import ROOT, require_binary

CORE = ROOT / "clients/unity/Runtime/Core"
HARNESS = ROOT / "tests/clients/csharp/PlayoutHarness.cs"


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    mcs = require_binary("mcs", "mono-mcs")
    mono = require_binary("mono", "mono-runtime")
    out = tmp_path_factory.mktemp("playout")
    exe = out / "playout.exe"
    sources = sorted(str(f) for f in CORE.glob("*.cs"))
    build = subprocess.run(
        [mcs, "-warnaserror+", "-r:System.Core.dll", f"-out:{exe}", *sources, str(HARNESS)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, f"does not compile:\n{build.stdout}{build.stderr}"
    return [mono, "--debug", str(exe)]


def scenario(harness: list[str], mode: str) -> dict:
    proc = subprocess.run([*harness, mode], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_filter_read_callbacks_fire_when_heard_and_truncate_carries_the_heard_position(
    harness: list[str],
) -> None:
    run = scenario(harness, "filter")
    block_ms = run["block"] * 1000 / run["rate"]
    latency_ms = run["latency_frames"] * 1000 / run["rate"]
    fired = run["fired"]
    assert [f["audio_start_ms"] for f in fired] == [0, 250, 500, 750]
    for f in fired:
        # never before its audio comes out of the speaker; within one block after
        assert f["audio_start_ms"] < f["heard_ms"] + 1 <= f["audio_start_ms"] + block_ms + 1
        # what was handed to the device runs ahead by the DSP buffers: send time would be early
        assert f["handed_ms"] - f["heard_ms"] == pytest.approx(latency_ms, abs=1)
    t = run["truncate"]
    event, _ = decode_client(t["frame"])
    assert isinstance(event, p.ConversationItemTruncate)
    assert event.item_id == "item_a" and event.content_index == 0
    assert event.audio_end_ms == t["heard_ms"] < t["handed_ms"]


def test_streaming_clip_callbacks_follow_its_play_position_through_an_underrun(
    harness: list[str],
) -> None:
    run = scenario(harness, "clip")
    tick_ms = run["tick"] * 1000 / run["rate"]
    fired = run["fired"]
    assert [f["audio_start_ms"] for f in fired] == [0, 250, 500, 750]
    for f in fired:
        assert f["audio_start_ms"] <= f["heard_ms"] <= f["audio_start_ms"] + tick_ms
    early, late = fired[:2], fired[2:]
    # the clip reads 0.8 s ahead: by "handed to Unity" every sentence was due at once
    assert all(f["handed_ms"] >= 400 for f in early)
    # the rest of the reply came late and the clip played silence meanwhile: the
    # sentences after the gap fire after it, at their place in what was heard
    assert all(f["position_ms"] > 1000 for f in late)
    assert late[0]["position_ms"] - early[1]["position_ms"] > 500 - 250
    assert run["heard_total_ms"] == 1000


def test_a_stopped_reply_s_late_parts_are_recognised_and_the_set_stays_bounded(
    harness: list[str],
) -> None:
    """PersonaeVoice drops audio, subtitles and actions of a reply it cut (they may still
    be on the wire after a barge-in) by asking CutItems; the set keeps the newest few."""
    run = scenario(harness, "cut")
    assert run["before"] == [True, False, 1]
    assert run["after"] == [False, True, True, 2]
