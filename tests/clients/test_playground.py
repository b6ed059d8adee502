"""The browser playground served at `/`, end to end in headless Debian Chromium.

Playwright drives /usr/bin/chromium (never `playwright install`) against the real
daemon. The microphone is Chromium's fake capture device fed from a WAV the test
writes, so "hold to talk" sends real speech through the page's AudioWorklet, PCM16
conversion and JSON frames. The test types a line, holds the talk button, and checks
routing, transcript and replies appear and that audio actually played.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from personae.daemon.characters import default_cast_dir, load_cast
from personae.sdk import protocol as p
from tests.clients.tools import ROOT, free_port, require_binary, write_wav

STATIC = ROOT / "daemon/static"
SPOKEN = "Mara, what do you know about the lights on the old mill?"
SPEECH_RATE = 48_000


def chromium_args(wav: Path) -> list[str]:
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        "--autoplay-policy=no-user-gesture-required",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]


def test_playground_handles_every_server_event() -> None:
    """The page's handler table names exactly the protocol's server events."""
    source = (STATIC / "playground.js").read_text()
    table = source[
        source.index("const HANDLERS = {") : source.index(
            "\n  };", source.index("const HANDLERS = {")
        )
    ]
    handled = set(re.findall(r'^\s*"([a-z_.]+)":', table, re.MULTILINE))
    assert handled == set(p.SERVER_EVENT_TYPES)
    sent = set(re.findall(r'type: "([a-z_.]+)"', source)) - {"server_vad", "message", "input_text"}
    assert sent <= set(p.CLIENT_EVENT_TYPES), sent - set(p.CLIENT_EVENT_TYPES)


def drive(base_url: str, wav: Path, screenshot: Path, speech_seconds: float) -> dict:
    """Runs the whole scenario in the page; returns what the page saw."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "the playwright package is missing: run scripts/ci-clients.sh "
            "(`.venv/bin/pip install playwright`; no `playwright install` needed)",
            pytrace=False,
        )
    chromium = require_binary("chromium", "chromium")
    page_errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium, args=chromium_args(wav), headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 820})
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            page.goto(base_url + "/")
            page.wait_for_selector("#status[data-state=connected]", timeout=20_000)
            page.wait_for_function(
                "document.querySelectorAll('#cast li').length >= 3", timeout=10_000
            )

            # the scene: Wren leaves, the daemon confirms
            page.uncheck("#cast li[data-id=wren] input")
            page.wait_for_function(
                "() => { const s = window.personae.session; return s && s.characters"
                " && s.characters.join() === 'bram,mara'; }",
                timeout=10_000,
            )

            # a typed line
            page.fill("#line", "Bram, can you fix my sword?")
            page.press("#line", "Enter")
            page.wait_for_selector(".reply[data-status]", timeout=180_000)

            # hold to talk: the fake microphone plays the WAV from its start
            page.hover("#talk")
            page.mouse.down()
            page.wait_for_timeout(int(speech_seconds * 1000) + 300)
            page.mouse.up()
            page.wait_for_function(
                "document.querySelectorAll('.reply[data-status]').length >= 2", timeout=180_000
            )
            # the reply is heard: its last chunk finishes playing
            page.wait_for_function(
                "() => { const a = window.personae.audio; return a.chunks > 0 && a.endedChunks >= a.chunks; }",
                timeout=120_000,
            )
            # voice activity: the microphone streams and the daemon's VAD finds the turn
            page.check("input[name=mode][value=vad]")
            page.wait_for_function(
                "document.querySelectorAll('.player[data-transcript]').length >= 2",
                timeout=120_000,
            )
            page.wait_for_function(
                "document.querySelectorAll('.route').length >= 3", timeout=60_000
            )
            page.check("input[name=mode][value=ptt]")
            seen = page.evaluate(
                """() => ({
                    replies: [...document.querySelectorAll('.reply')].map(el => ({
                        character: el.dataset.character, status: el.dataset.status,
                        text: el.querySelector('.text').textContent })),
                    routes: [...document.querySelectorAll('.route')].map(el => ({
                        character: el.dataset.character, bars: el.querySelectorAll('.bar').length })),
                    players: [...document.querySelectorAll('.player')].map(el => ({
                        text: el.querySelector('.text').textContent, transcript: el.dataset.transcript || null })),
                    audio: window.personae.audio,
                    errors: window.personae.errors,
                    unknown: window.personae.unknown,
                    events: window.personae.events,
                })"""
            )
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    seen["page_errors"] = page_errors
    return seen


@pytest.mark.models
def test_playground_talks_and_plays_audio(daemon, tmp_path: Path) -> None:
    from tests.speech import speak_pcm16, words

    pcm = speak_pcm16(SPOKEN, SPEECH_RATE, pad_s=0.4)
    wav = write_wav(tmp_path / "mic.wav", pcm + bytes(SPEECH_RATE * 2 * 2), SPEECH_RATE)
    shot = tmp_path / "playground.png"
    seen = drive(daemon.http, wav, shot, len(pcm) / 2 / SPEECH_RATE)

    assert seen["page_errors"] == [] and seen["errors"] == [], (seen["page_errors"], seen["errors"])
    typed, spoken = seen["replies"][:2]
    assert typed["character"] == "bram" and typed["status"] == "completed" and typed["text"].strip()
    assert (
        spoken["character"] in {"bram", "mara"}
        and spoken["status"] == "completed"
        and spoken["text"].strip()
    )
    assert [r["character"] for r in seen["routes"][:2]] == [typed["character"], spoken["character"]]
    assert all(r["bars"] == 2 for r in seen["routes"]), "scores for both characters in the scene"
    heard = [p["transcript"] for p in seen["players"] if p["transcript"]]
    assert len(heard) >= 2, seen["players"]  # hold to talk, then voice activity
    for transcript in heard[:2]:
        assert words(transcript) & {"mill", "lights", "mara"}, seen["players"]
    assert "input_audio_buffer.speech_started" in seen["events"], "server VAD heard no speech"
    assert seen["audio"]["chunks"] > 2 and seen["audio"]["scheduledMs"] > 1000
    assert seen["audio"]["peak"] > 0.01, "the output analyser never saw the reply's audio"
    assert shot.stat().st_size > 10_000
    if out := os.environ.get("PERSONAE_ARTIFACT_DIR"):
        shutil.copy(shot, Path(out) / "playground.png")


def scripted_app():
    """The playground's static files plus a scripted, misbehaving /v1/realtime: the first
    connection gets an event from a newer daemon, a broken frame and half a reply, then
    is closed mid-reply; the second answers one line with text and audio."""
    import base64
    import math

    from starlette.applications import Starlette
    from starlette.responses import FileResponse, JSONResponse
    from starlette.routing import Mount, Route, WebSocketRoute
    from starlette.staticfiles import StaticFiles
    from starlette.websockets import WebSocket, WebSocketDisconnect

    connections = []
    feedback: list[p.NpcFeedback | p.GameActionResult] = []

    def dump(event) -> str:
        return event.model_dump_json()

    async def realtime(ws: WebSocket) -> None:
        await ws.accept(subprotocol=p.SUBPROTOCOL)
        connections.append(ws)
        session = p.Session(id=f"sess_{len(connections)}", characters=["bram", "mara"])
        await ws.send_text(dump(p.SessionCreated(session=session)))
        part = {"response_id": "resp_1", "item_id": "item_1", "character": "bram"}
        if len(connections) == 1:
            await ws.send_text('{"type": "npc.gaze", "character": "bram", "at": "player"}')
            await ws.send_text("{not json")
            info = p.ResponseInfo(id="resp_1", character="bram")
            await ws.send_text(dump(p.ResponseCreated(response=info)))
            await ws.send_text(dump(p.OutputTextDelta(**part, delta="Hel")))
            await ws.close(code=1011)  # the daemon gives up mid-reply
            return
        tone = b"".join(
            int(8000 * math.sin(2 * math.pi * 440 * i / 24000)).to_bytes(2, "little", signed=True)
            for i in range(24000 // 2)
        )
        try:
            while True:
                event = p.client_event_adapter.validate_json(await ws.receive_text())
                if isinstance(event, p.NpcFeedback | p.GameActionResult):
                    feedback.append(event)
                if not isinstance(event, p.ResponseCreate):
                    continue
                part["response_id"] = info_id = f"resp_{len(connections)}"
                info = p.ResponseInfo(id=info_id, character="bram", output_sample_rate=24000)
                scores = {"bram": 0.9, "mara": 0.2}
                for out in (
                    p.NpcRoute(item_id=None, character="bram", reason="addressed", scores=scores),
                    p.ResponseCreated(response=info),
                    p.OutputTextDelta(**part, delta="Still here."),
                    p.NpcAction(**part, kind="action", text="wipes his hands"),
                    p.NpcAction(
                        **part,
                        kind="game",
                        text="sell the player an item from the forge",
                        name="sell",
                        arguments={"item": "sword", "price": 30},
                        action_id="act_1",
                    ),
                    p.NpcSentence(
                        **part, text="Still here.", audio_start_ms=0, audio_duration_ms=500
                    ),
                    p.NpcEmotion(
                        character="bram", dominant="joy", intensity=0.6, blend={"joy": 0.6}
                    ),
                    p.NpcViseme(
                        **part,
                        visemes=[
                            p.Viseme(viseme=v, start_ms=a, duration_ms=b - a)
                            for v, a, b in (("PP", 0, 150), ("aa", 150, 300), ("ou", 300, 500))
                        ],
                        words=[p.WordTiming(text="Still", start_ms=0, duration_ms=250)],
                    ),
                    p.OutputAudioDelta(**part, delta=base64.b64encode(tone).decode()),
                    p.OutputAudioDone(**part),
                    p.ResponseDone(
                        response=info.model_copy(
                            update={
                                "status": "completed",
                                "output_text": "Still here.",
                                "audio_sent_ms": 500,
                            }
                        )
                    ),
                ):
                    await ws.send_text(dump(out))
        except WebSocketDisconnect:
            pass

    async def index(request):
        return FileResponse(STATIC / "index.html")

    async def characters(request):
        cast = [
            {
                "id": "bram",
                "name": "Bram",
                "description": "The blacksmith.",
                "actions": [{"name": "sell", "description": "sell an item", "parameters": {}}],
            },
            {"id": "mara", "name": "Mara", "description": "The archivist."},
        ]
        return JSONResponse({"characters": cast})

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/v1/characters", characters),
            WebSocketRoute("/v1/realtime", realtime),
            Mount("/playground", StaticFiles(directory=STATIC)),
        ]
    )
    return app, connections, feedback


def test_playground_recovers_from_a_misbehaving_daemon(tmp_path: Path) -> None:
    """Unknown event ignored, bad frame and a drop mid-reply reported, reconnect, carry on."""
    import threading
    import time

    import uvicorn
    from playwright.sync_api import sync_playwright

    app, connections, feedback = scripted_app()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    wav = write_wav(tmp_path / "silence.wav", bytes(16000 * 2), 16000)
    page_errors: list[str] = []
    try:
        with sync_playwright() as pw:
            chromium = require_binary("chromium", "chromium")
            browser = pw.chromium.launch(executable_path=chromium, args=chromium_args(wav))
            try:
                page = browser.new_page()
                page.on("pageerror", lambda exc: page_errors.append(str(exc)))
                page.goto(f"http://127.0.0.1:{port}/")
                page.wait_for_function(
                    "window.personae.errors.some(e => e.code === 'connection_lost')", timeout=10_000
                )
                page.wait_for_function(
                    "window.personae.status === 'connected' && window.personae.session.id === 'sess_2'",
                    timeout=10_000,
                )
                page.fill("#line", "Are you still there?")
                page.press("#line", "Enter")
                page.wait_for_selector(".reply[data-status=completed]", timeout=10_000)
                page.wait_for_function("window.personae.audio.endedChunks >= 1", timeout=10_000)
                assert page.text_content("#cast li[data-id=bram] .emotion") == "joy"
                assert (
                    page.text_content(".reply[data-status=completed] .action")
                    == "*wipes his hands*"
                )
                page.click(".reply[data-status=completed] .feedback button:text('Good')")
                assert "sell" in page.text_content("#cast li[data-id=bram]")
                assert "item: sword, price: 30" in page.text_content(
                    ".game-action[data-action=act_1]"
                )
                page.fill(".game-action[data-action=act_1] .reason", "no coin")
                page.click(".game-action[data-action=act_1] button[data-status=refused]")
                deadline = time.monotonic() + 5
                while len(feedback) < 2 and time.monotonic() < deadline:
                    time.sleep(0.05)
                seen = page.evaluate(
                    """() => ({
                        unknown: window.personae.unknown,
                        errors: window.personae.errors.map(e => e.code),
                        replies: [...document.querySelectorAll('.reply')].map(
                            el => [el.dataset.character, el.querySelector('.text').textContent]),
                        lips: {events: window.personae.lips.stats.events,
                               drawn: [...window.personae.lips.stats.drawn]},
                    })"""
                )
                page.screenshot(path=str(tmp_path / "recovered.png"))
            finally:
                browser.close()
    finally:
        server.should_exit = True
        thread.join(10)
    assert page_errors == []
    assert "npc.gaze" not in p.SERVER_EVENT_TYPES
    assert seen["unknown"] == ["npc.gaze"]
    assert seen["errors"] == ["malformed_frame", "connection_lost"]
    assert seen["replies"] == [["bram", "Hel"], ["bram", "Still here."]]
    # the mouth drew the visemes while the audio played (frames land where they land)
    assert seen["lips"]["events"] == 1
    assert len(set(seen["lips"]["drawn"]) & {"PP", "aa", "ou"}) >= 2, seen["lips"]
    assert set(seen["lips"]["drawn"]) <= {"PP", "aa", "ou"}
    assert len(connections) == 2
    rating, result = feedback
    assert (rating.character, rating.score, rating.response_id) == ("bram", 1.0, "resp_2")
    assert (result.action_id, result.status, result.reason) == ("act_1", "refused", "no coin")


def test_playground_starts_a_scene_between_characters_and_shows_it(tmp_path: Path) -> None:
    """The ticked characters talk about a topic: their lines appear in turn, each with
    its adapter, between the notes that the exchange started and ended."""
    from playwright.sync_api import sync_playwright

    from personae.daemon.testing.launcher import Daemon, FakeEngines

    wav = write_wav(tmp_path / "silence.wav", bytes(16000 * 2), 16000)
    fakes = FakeEngines(voices=True, tts_ms_per_char=5.0)
    page_errors: list[str] = []
    with Daemon(state_dir=tmp_path / "daemon", fakes=fakes, settings={"audio_lead_ms": 0}) as d:
        with sync_playwright() as pw:
            chromium = require_binary("chromium", "chromium")
            browser = pw.chromium.launch(executable_path=chromium, args=chromium_args(wav))
            try:
                page = browser.new_page()
                page.on("pageerror", lambda exc: page_errors.append(str(exc)))
                page.goto(d.http + "/")
                page.wait_for_selector("#status[data-state=connected]", timeout=20_000)
                page.wait_for_function(
                    "document.querySelectorAll('#cast li').length >= 3", timeout=10_000
                )
                page.uncheck("#cast li[data-id=wren] input")
                page.wait_for_function(
                    "() => { const s = window.personae.session; return s && s.characters"
                    " && s.characters.join() === 'bram,mara'; }",
                    timeout=10_000,
                )
                page.fill("#topic", "the lights on the old mill")
                page.fill("#lines", "3")
                page.click("#start-converse")
                page.wait_for_function(
                    "window.personae.events.includes('npc.exchange.done')", timeout=30_000
                )
                seen = page.evaluate(
                    """() => ({
                        replies: [...document.querySelectorAll('.reply')].map(el => ({
                            character: el.dataset.character, status: el.dataset.status,
                            meta: el.querySelector('.meta').textContent })),
                        notes: [...document.querySelectorAll('.exchange')].map(el => el.textContent),
                        errors: window.personae.errors,
                    })"""
                )
            finally:
                browser.close()
    assert page_errors == [] and seen["errors"] == []
    assert [r["character"] for r in seen["replies"]] == ["bram", "mara", "bram"]
    assert all(r["status"] == "completed" for r in seen["replies"])
    assert [r["meta"].count("line ") for r in seen["replies"]] == [1, 1, 1]
    cast = load_cast([default_cast_dir()])
    for reply, cid in zip(seen["replies"][:2], ("bram", "mara"), strict=True):
        ref = cast[cid].adapter
        assert ref is not None and f"{cid}@{ref.version}" in reply["meta"]
    started, ended = seen["notes"]
    assert "Bram and Mara talk about the lights on the old mill (3 lines)" in started
    assert "finished after 3 line(s)" in ended
