"""Start-up warm-up: every engine runs once and each character's static prompt is primed."""

from __future__ import annotations

from personae.daemon.characters import VoiceConfig, default_cast_dir, load_cast
from personae.daemon.session.prompt import Turn, build_messages
from personae.daemon.testing import FakeLLM, FakeTTS
from personae.daemon.testing.harness import fake_service
from personae.daemon.warmup import warm_up


def test_warm_up_primes_each_characters_static_prompt_with_its_adapter() -> None:
    llm = FakeLLM()
    service = fake_service(llm=llm)
    # bram keeps his bundled adapter; the others have none in the fake service
    service.cast["bram"] = load_cast([default_cast_dir()])["bram"]
    steps: list[tuple[str, float, float]] = []
    try:
        warm_up(service, progress=lambda *step: steps.append(step))
    finally:
        service.close()
    assert steps[-1][1] == steps[-1][2]  # progress reached its end
    assert len(llm.primed) == len(service.cast)
    primed = {r.messages[0].content: r for r in llm.primed}
    for cid, ch in service.cast.items():
        request = primed[ch.render_system_prompt()]
        # the primed prompt is the start of every reply's prompt for that character
        reply = build_messages(ch, [Turn("player", "Hello.")], context=["Mood: calm."])
        assert reply[: len(request.messages)] == list(request.messages), cid
        assert (request.adapter is not None) == (cid == "bram"), cid
    assert len(llm.adapters) == 1  # bram's adapter was loaded to prime with it


def test_warm_up_runs_only_the_tts_engines_the_cast_speaks_with() -> None:
    used, unused = FakeTTS(), FakeTTS()
    service = fake_service(tts=used)
    service.engines.tts["espeak"] = unused  # type: ignore[index]
    service.cast = {
        cid: ch.model_copy(update={"voice": VoiceConfig(engine="piper", pitch=1.1)})
        for cid, ch in service.cast.items()
    }
    try:
        warm_up(service)
    finally:
        service.close()
    assert [text for text, _ in used.spoken] == ["Hello."]
    assert unused.spoken == []


def test_the_daemon_loads_only_the_tts_engines_its_cast_uses(monkeypatch) -> None:
    from personae.daemon import service as service_module
    from personae.daemon.settings import Settings

    created: list[tuple[str, str]] = []
    monkeypatch.setattr(
        service_module.registry,
        "create",
        lambda kind, name, settings: created.append((kind, name)) or FakeTTS(),
    )
    monkeypatch.setattr(service_module, "load_end_of_turn", lambda settings: None)
    cast = load_cast([default_cast_dir()])
    engines = service_module.build_engines(Settings(), cast, lambda *a: None)
    used = {ch.voice.engine for ch in cast.values()}
    assert set(engines.tts) == used == {name for kind, name in created if kind == "tts"}
    assert "espeak" not in used  # no default character speaks with espeak-ng any more
