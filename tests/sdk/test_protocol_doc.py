"""docs/protocol.md's event tables name exactly the events sdk/protocol.py types."""

from __future__ import annotations

import re
from pathlib import Path

from personae.sdk import openai_events
from personae.sdk import protocol as p

DOC = Path(__file__).resolve().parents[2] / "docs/protocol.md"


def table_types(heading: str) -> set[str]:
    text = DOC.read_text()
    start = text.index(f"\n## {heading}\n")
    end = text.index("\n## ", start + 1)
    types: set[str] = set()
    for line in text[start:end].splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            types |= set(re.findall(r"`([a-z_.]+)`", first))
    return types


def test_client_events_table_matches_the_protocol() -> None:
    assert table_types("Client events") == set(p.CLIENT_EVENT_TYPES)


def test_server_events_table_matches_the_protocol() -> None:
    # npc.warning is an event of the OpenAI shapes (sdk/openai_events.py), listed here too
    extra = {"npc.warning"} & set(openai_events.OPENAI_SERVER_EVENT_TYPES)
    assert table_types("Server events") == set(p.SERVER_EVENT_TYPES) | extra
