"""Start-up warm-up: every engine runs once and each character's static prompt is primed."""

from __future__ import annotations

from personae.daemon.characters import default_cast_dir, load_cast
from personae.daemon.session.prompt import Turn, build_messages
from personae.daemon.testing import FakeLLM
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
