"""docs/protocol.md's OpenAI compatibility table names every OpenAI event and field
the protocol module knows, so the two cannot drift apart."""

from __future__ import annotations

from pathlib import Path

from personae.sdk import openai_events, openai_shape
from personae.sdk import protocol as p

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def table() -> str:
    text = DOC.read_text()
    start = text.index("| OpenAI event or field | personae |")
    return text[start : text.index("\n\n", start)]


def test_every_openai_event_and_field_is_in_the_table() -> None:
    rows = table()
    names = set(openai_events.OPENAI_SERVER_EVENT_TYPES) - {"npc.warning"}
    names |= {
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
    }
    names |= {n.removesuffix(".delta") for n in openai_shape.BETA_NAMES if n.endswith(".delta")}
    names |= set(openai_shape.ACKNOWLEDGED) | set(openai_shape.RESPONSE_ACKNOWLEDGED)
    openai_fields = {
        name for name, info in p.SessionConfig.model_fields.items() if info.exclude
    } - {"transcription", "object"}
    names |= openai_fields

    def listed(name: str) -> bool:
        if f"`{name}" in rows or f"{name}`" in rows:
            return True
        base = name.removesuffix(".done")  # "`x.delta` / `.done`"
        return name.endswith(".done") and f"`{base}.delta` / `.done`" in rows

    assert sorted(n for n in names if not listed(n)) == []


def test_the_beta_names_are_in_the_table() -> None:
    rows = table()
    for beta in openai_shape.BETA_NAMES.values():
        family = beta.rsplit(".", 1)[0]
        assert f"beta `{family}.*`" in rows, beta
