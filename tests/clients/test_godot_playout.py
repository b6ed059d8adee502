"""Godot play-out time (clients/godot/addons/personae/playout.gd), run under Godot 3's
headless runtime against a simulated Godot audio path (tests/clients/godot/
playout_harness.gd: generator ring buffer, 128-frame resampler pulls, mixer blocks,
driver latency, 60 fps game loop): subtitles and actions fire when their audio comes out
of the speaker, not when it reaches Godot; an underrun's silence is not counted as heard;
and a voice cut off truncates each reply at the heard position, with the protocol's
fields, ignoring audio still in flight. The voice's stop sequence mid-reply (cancel, then
truncate) is played against a daemon session on fake engines.

Godot 4 itself cannot be installed here: playout.gd is written in the GDScript common to
Godot 3 and 4 (gdparse checks it as Godot 4 in test_godot.py), so Debian's godot3-server
runs its logic. The engine calls around it in personae_voice.gd are untested beyond
parsing and linting."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from personae.daemon.testing import FakeLLM
from personae.daemon.testing.harness import fake_service, running
from personae.sdk import protocol as p
from personae.sdk.framing import Framing, decode_client
from tests.clients.tools import ROOT, require_binary

PLAYOUT = ROOT / "clients/godot/addons/personae/playout.gd"
HARNESS = ROOT / "tests/clients/godot/playout_harness.gd"


def _const(name: str) -> int:
    found = re.search(rf"^const {name} := (\d+)$", PLAYOUT.read_text(), re.M)
    assert found, name
    return int(found[1])


LEAD = _const("RESAMPLER_LEAD")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    godot = require_binary("godot3-server", "godot3-server")
    project = tmp_path_factory.mktemp("godot3")
    (project / "project.godot").write_text("config_version=4\n")
    shutil.copy(PLAYOUT, project / "playout.gd")
    shutil.copy(HARNESS, project / "playout_harness.gd")

    def scenario(name: str) -> dict:
        proc = subprocess.run(
            [godot, "--path", str(project), "-s", "res://playout_harness.gd"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PLAYOUT_SCENARIO": name},
        )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        assert proc.returncode == 0 and lines, proc.stdout + proc.stderr
        out = json.loads(lines[-1].removeprefix("RESULT "))
        assert "error" not in out, out
        return out

    return scenario


def _ms(frames: int, out: dict) -> float:
    return frames * 1000 / out["rate"]


def _assert_clock_follows_the_speaker(out: dict) -> None:
    assert out["frames"] > 100  # game frames sampled
    assert out["max_early_frames"] == 0  # never ahead of what came out of the speaker
    # behind by at most the resampler's read-ahead it counts out (plus rounding)
    assert out["max_late_frames"] <= LEAD + 8


def _assert_fired_when_heard(out: dict) -> None:
    late_ms = out["frame_ms"] + _ms(LEAD, out) + 1
    for f in out["fired"]:
        assert f["audio_start_ms"] < f["true_heard_ms"] <= f["audio_start_ms"] + late_ms, f


def test_cues_fire_when_their_audio_is_heard_not_when_it_arrives(run) -> None:
    out = run("steady")
    names = [f["name"] for f in out["fired"]]
    assert names == [f"sentence@{ms}" for ms in (0, 500, 1000, 1500)] + ["action@end"]
    _assert_clock_follows_the_speaker(out)
    _assert_fired_when_heard({**out, "fired": out["fired"][:-1]})  # the last: below
    # the audio reached Godot far ahead of the speaker: arrival time would fire early
    assert max(f["handed_ms"] - f["true_heard_ms"] for f in out["fired"]) > 400
    # a stage direction after the last word fires once the reply's end is heard
    end = out["fired"][-1]
    assert end["true_heard_ms"] == 2000 and end["audio_start_ms"] == 2000
    assert out["pending_after"] == 0 and out["heard_ms_after"] == 2000
    assert out["unfinished_after"] == []  # its audio is done: nothing to cancel


def test_an_underrun_is_not_heard_as_the_reply(run) -> None:
    out = run("underrun")
    _assert_clock_follows_the_speaker(out)
    _assert_fired_when_heard(out)
    fired = {f["name"]: f for f in out["fired"]}
    assert list(fired) == ["sentence@0", "sentence@400", "sentence@600", "sentence@1000"]
    # 500 ms played, then a second of silence before the rest came: a clock counting the
    # generator's position (silence included) would show sentence@600 during the gap
    assert fired["sentence@600"]["at_s"] > 1.5
    assert out["heard_ms_after"] == 1500


def test_replies_queued_back_to_back_are_each_timed_from_their_own_start(run) -> None:
    out = run("two")
    assert out["queued_max_ms"] > 500  # part of a waited beyond the generator
    _assert_clock_follows_the_speaker(out)
    _assert_fired_when_heard(out)  # true_heard_ms is of the cue's own reply
    fired = {f["name"]: f for f in out["fired"]}
    assert list(fired) == ["a@0", "a@500", "a@1500", "b@0", "b@500"]
    # b arrived while a was still playing; its first cue waits for a's end (2 s of audio)
    assert fired["b@0"]["at_s"] - fired["a@0"]["at_s"] > 1.95
    assert fired["b@0"]["handed_ms"] == 1000  # all of b had reached Godot long before
    assert out["heard_ms_of"] == [2000, 1000] and out["current_after"] == "item_b"


def test_stopping_truncates_at_the_heard_position_and_drops_the_rest(run) -> None:
    out = run("barge")
    _assert_clock_follows_the_speaker(out)
    _assert_fired_when_heard(out)
    assert [f["name"] for f in out["fired"]] == ["a@0", "a@1000"]
    assert sorted(out["dropped"]) == ["a@2000", "b@0", "c@0"]  # cut: never fire

    a, b = out["truncations"]  # c had no audio when the voice stopped: nothing to truncate
    for t in (a, b):
        event = p.ConversationItemTruncate.model_validate(t)
        decoded, _ = decode_client(json.dumps(t))
        assert decoded == event
        assert set(t) == set(p.ConversationItemTruncate.model_fields) - {"event_id"}
    assert a["item_id"] == "item_a" and a["content_index"] == 0
    heard = out["true_heard_a_ms"]
    assert heard - _ms(LEAD, out) - 1 <= a["audio_end_ms"] <= heard
    assert a["audio_end_ms"] < out["handed_a_ms"] - 1000  # not what reached Godot
    assert b == {**b, "item_id": "item_b", "content_index": 0, "audio_end_ms": 0}

    # neither reply had its response.output_audio.done: the voice cancels before truncating
    assert out["unfinished_at_stop"] == ["item_a", "item_b"]
    # audio of the cut replies still in flight is ignored; their cues never come due
    assert out["cut"] == [True, True, True]
    assert out["written_after"] == 0
    assert out["state_after"] == _const("NEVER")


def test_the_harness_loads_the_addons_own_helper() -> None:
    # the harness must exercise playout.gd itself, not a copy of its arithmetic
    harness = HARNESS.read_text()
    assert 'load("res://playout.gd")' in harness
    for name in ("_taken_at", "RESAMPLER_LEAD", "heard_device"):
        assert name not in harness, name
    assert Path(PLAYOUT).read_text().startswith("class_name PersonaePlayout\n")


async def test_the_daemon_takes_the_stop_sequence_of_a_voice_cut_off_mid_reply() -> None:
    """What PersonaeVoice.stop_speaking() sends when the game stops a reply still being
    generated, as the Godot client frames it (JSON): response.cancel first, so the reply
    ends even if the truncate were lost, then the truncate at the heard position."""
    llm = FakeLLM(reply=lambda req: "A long answer. " * 20)
    async with running(fake_service(llm=llm, audio_lead_ms=200), Framing.JSON) as h:
        h.send(json.dumps(_say("Bram?")))
        h.send(json.dumps({"type": "response.create", "response": {}}))
        await h.wait_for(lambda e: e.type == "response.output_audio.delta" and e.offset_ms >= 1500)
        delta = h.of_type("response.output_audio.delta")[-1]
        starts = [s.audio_start_ms for s in h.of_type("npc.sentence")]
        heard_ms = 1200  # what the voice's clock says the player heard
        truncate = {
            "type": "conversation.item.truncate",
            "item_id": delta.item_id,
            "content_index": 0,
            "audio_end_ms": heard_ms,
        }
        h.send(json.dumps({"type": "response.cancel", "response_id": delta.response_id}))
        h.send(json.dumps(truncate))
        truncated = await h.wait_type("conversation.item.truncated")
        done = h.of_type("response.done")[-1]
    assert done.response.status == "cancelled"
    assert truncated.item_id == delta.item_id and truncated.audio_end_ms == heard_ms
    kept = [t for t in h.session.history if t.speaker != "player"][-1].text
    assert kept == " ".join(["A long answer."] * sum(1 for s in starts if s < heard_ms))
    assert 0 < kept.count("A long answer.") < 20  # not the whole reply, nor what was sent


def _say(text: str) -> dict:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    return {"type": "conversation.item.create", "item": item}
