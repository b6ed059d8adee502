"""The Godot 4 addon: parsed and linted with gdtoolkit, its event tables checked against
sdk/protocol.py, and the sample scene's references resolved."""

from __future__ import annotations

import configparser
import re
import subprocess
from pathlib import Path

import pytest

from personae.sdk import protocol as p
from tests.clients.tools import ROOT

GODOT = ROOT / "clients/godot"
ADDON = GODOT / "addons/personae"
CLIENT = ADDON / "personae_client.gd"


def gdtool(name: str) -> str:
    path = ROOT / ".venv/bin" / name
    if not path.exists():
        pytest.fail(
            f"{name} is missing: run scripts/ci-clients.sh "
            "(`.venv/bin/pip install -c constraints.txt gdtoolkit`)",
            pytrace=False,
        )
    return str(path)


def scripts() -> list[Path]:
    found = sorted(GODOT.rglob("*.gd"))
    assert len(found) >= 5, found
    return found


def test_every_script_parses() -> None:
    for script in scripts():
        result = subprocess.run([gdtool("gdparse"), str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script.name}:\n{result.stdout}{result.stderr}"


def test_every_script_passes_gdlint_and_gdformat() -> None:
    files = [str(s) for s in scripts()]
    lint = subprocess.run([gdtool("gdlint"), *files], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = subprocess.run([gdtool("gdformat"), "--check", *files], capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def _const_block(source: str, name: str) -> str:
    start = source.index(f"const {name} := ")
    closer = "\n}" if source[start:].split("=", 1)[1].strip().startswith("{") else "\n]"
    return source[start : source.index(closer, start)]


def test_server_events_and_signals_match_the_protocol() -> None:
    source = CLIENT.read_text()
    table = dict(
        re.findall(r'^\t"([a-z_.]+)": "([a-z_]+)",$', _const_block(source, "SERVER_EVENTS"), re.M)
    )
    assert set(table) == set(p.SERVER_EVENT_TYPES), "SERVER_EVENTS vs sdk/protocol.py"
    declared = set(re.findall(r"^signal ([a-z_]+)\(", source, re.M))
    missing = {t: s for t, s in table.items() if s not in declared}
    assert missing == {}, f"events without a signal: {missing}"
    assert len(set(table.values())) == len(table), "two events share a signal"
    handled = set(re.findall(r'^\t\t"([a-z_.]+)":$', source, re.M))
    assert handled <= set(p.SERVER_EVENT_TYPES), handled - set(p.SERVER_EVENT_TYPES)


def test_client_events_match_the_protocol() -> None:
    listed = set(re.findall(r'"([a-z_.]+)"', _const_block(CLIENT.read_text(), "CLIENT_EVENTS")))
    assert listed == set(p.CLIENT_EVENT_TYPES), "CLIENT_EVENTS vs sdk/protocol.py"
    sent: set[str] = set()
    for script in scripts():
        sent |= set(re.findall(r'\{"type": "([a-z_.]+)"', script.read_text()))
        sent |= set(re.findall(r'^\t\t"type": "([a-z_.]+)",', script.read_text(), re.M))
    sent -= {"message", "input_text", "server_vad"}
    assert sent and sent <= set(p.CLIENT_EVENT_TYPES), sent - set(p.CLIENT_EVENT_TYPES)
    assert 'SUBPROTOCOL := "' + p.SUBPROTOCOL + '"' in CLIENT.read_text()


def test_plugin_and_sample_scene_resolve() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ADDON / "plugin.cfg")
    assert (ADDON / cfg["plugin"]["script"].strip('"')).is_file()
    for scene in GODOT.rglob("*.tscn"):
        text = scene.read_text()
        paths = re.findall(r'path="res://([^"]+)"', text)
        assert paths, scene
        for rel in paths:
            assert (GODOT / rel).is_file(), f"{scene.name} refers to missing res://{rel}"
        for used in re.findall(r'ExtResource\("([^"]+)"\)', text):
            assert f'id="{used}"' in text, f"{scene.name}: ExtResource {used} is not declared"
    project = (GODOT / "project.godot").read_text()
    assert 'run/main_scene="res://sample/two_characters.tscn"' in project
    assert "driver/enable_input=true" in project  # the microphone needs audio input on


def test_scripts_connect_only_to_signals_that_exist() -> None:
    declared: dict[str, set[str]] = {}
    for script in scripts():
        name = re.search(r"^class_name (\w+)", script.read_text(), re.M)
        if name:
            declared[name[1]] = set(re.findall(r"^signal (\w+)", script.read_text(), re.M))
    for var, cls in (("client", "PersonaeClient"), ("voice", "PersonaeVoice")):
        for script in scripts():
            for used in re.findall(rf"\b{var}\.(\w+)\.connect\(", script.read_text()):
                assert used in declared[cls], f"{script.name} connects to missing {cls}.{used}"


def test_truncate_payload_has_the_protocols_fields() -> None:
    source = (ADDON / "playout.gd").read_text()
    body = source[source.index("static func truncate_event(") :]
    body = body[: body.index("\n\n")]
    keys = set(re.findall(r'^\t\t"([a-z_]+)": ', body, re.M))
    assert 'return {\n\t\t"type": "conversation.item.truncate",' in body
    model = p.ConversationItemTruncate
    assert keys == set(model.model_fields) - {"event_id"}, keys
    assert '"content_index": 0,' in body  # a reply item has one content part
    # the client's truncate() and every voice that is cut off send this payload
    assert "send_event(PersonaePlayout.truncate_event(item_id, audio_end_ms))" in CLIENT.read_text()
    voice = (ADDON / "personae_voice.gd").read_text()
    assert "playout.stop(" in voice and "client.send_event(event)" in voice


def test_echo_cancellation_is_declared_with_the_session_field() -> None:
    source = CLIENT.read_text()
    assert "@export var client_echo_cancellation := false:" in source
    assert 'update_session({"client_echo_cancellation": enabled})' in source
    field = p.SessionConfig.model_fields["client_echo_cancellation"]
    assert field.annotation is bool and field.default is False
