"""A character whose voice the daemon cannot speak is refused when it arrives (at start-up,
or registered over the admin API), with what is wrong, never at its first reply."""

from __future__ import annotations

import httpx
import pytest

from personae.daemon.app import create_app
from personae.daemon.characters import VoiceConfig
from personae.daemon.errors import ConfigError
from personae.daemon.service import Service
from personae.daemon.testing.harness import fake_service, served

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def kokoro(settings):
    from personae.daemon.engines import registry

    return registry.create("tts", "kokoro", settings)


def with_voice(svc: Service, cid: str, voice: VoiceConfig) -> dict:
    body = svc.cast[cid].model_dump(mode="json", exclude={"id"})
    body["voice"] = voice.model_dump(mode="json")
    body["adapter"] = None
    return body


def test_a_bad_kokoro_voice_is_refused_at_registration_and_a_blend_accepted(kokoro) -> None:
    svc = fake_service()
    svc.engines.tts["kokoro"] = kokoro  # type: ignore[index]
    with served(create_app(service=svc)) as address:
        http = httpx.Client(base_url=f"http://{address}", timeout=30)
        bad = VoiceConfig(engine="kokoro", voice="bf_lily:0.6,af_skye:0.4")
        r = http.post(
            "/v1/admin/characters/wren/versions",
            json={"version": "2", "character": with_voice(svc, "wren", bad)},
        )
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["code"] == "invalid_voice"
        assert "character 'wren': unknown Kokoro voice 'af_skye'" in error["message"]
        good = VoiceConfig(engine="kokoro", voice="bf_lily:0.6,af_sky:0.4")
        r = http.post(
            "/v1/admin/characters/wren/versions",
            json={"version": "3", "character": with_voice(svc, "wren", good)},
        )
        assert r.status_code == 201, r.text
        http.close()
    svc.close()


def test_a_cast_with_a_bad_voice_does_not_start(kokoro, tmp_path) -> None:
    svc = fake_service()
    cast = dict(svc.cast)
    cast["mara"] = cast["mara"].model_copy(
        update={"voice": VoiceConfig(engine="kokoro", voice="bf_emma:much")}
    )
    engines = svc.engines
    engines.tts["kokoro"] = kokoro  # type: ignore[index]
    svc.close()
    with pytest.raises(ConfigError, match=r"character 'mara': .*weight 'much' of 'bf_emma'"):
        Service.create(svc.settings, engines=engines, cast=cast)


@pytest.mark.parametrize(
    ("engine", "voice", "message"),
    [
        ("espeak", "en-us+f33", r"character 'bram': espeak-ng voice 'en-us\+f33': .*variant"),
        (
            "piper",
            "/nowhere/bram.onnx",
            r"character 'bram': Piper voice '/nowhere/bram.onnx' not found",
        ),
    ],
)
def test_a_bad_piper_or_espeak_voice_stops_the_start(engine, voice, message) -> None:
    from personae.daemon.engines.tts_espeak import EspeakTTS
    from personae.daemon.engines.tts_piper import PiperTTS

    svc = fake_service()
    cast = dict(svc.cast)
    cast["bram"] = cast["bram"].model_copy(
        update={"voice": VoiceConfig(engine=engine, voice=voice)}
    )
    engines = svc.engines
    engines.tts[engine] = EspeakTTS() if engine == "espeak" else PiperTTS(threads=1)  # type: ignore[index]
    svc.close()
    with pytest.raises(ConfigError, match=message):
        Service.create(svc.settings, engines=engines, cast=cast)
