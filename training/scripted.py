"""Dialogue examples from scripts (.script, .yarn): speakers are written, not guessed.

A target character's line becomes the reply and the line it answers (the line before,
or the Yarn option that opens its branch) the user turn. Consecutive lines of the same
character answering each other are one reply. A line that answers nothing (a scene's
first line) is skipped: there is no prompt to pair it with.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from personae.training.ingest.scenes import Scene


def scripted_examples(scenes: Iterable[Scene], speakers: Mapping[str, str]) -> list[dict[str, Any]]:
    """`speakers` maps a name as written in scripts (lower case) to a target character id."""
    rows: list[dict[str, Any]] = []
    for scene in scenes:
        lines = scene.lines
        k = 0
        while k < len(lines):
            line = lines[k]
            cid = speakers.get(line.speaker)
            if cid is None or line.reply_to is None:
                k += 1
                continue
            prompt = lines[line.reply_to]
            if speakers.get(prompt.speaker) == cid:  # continues own speech: merged above
                k += 1
                continue
            reply = [line.text]
            j = k + 1
            while (
                j < len(lines) and lines[j].speaker == line.speaker and lines[j].reply_to == j - 1
            ):
                reply.append(lines[j].text)
                j += 1
            rows.append(
                {
                    "character": cid,
                    "strategy": "script",
                    "user": prompt.text,
                    "assistant": " ".join(reply),
                    "provenance": {
                        "file": scene.source,
                        "scene": scene.title,
                        "line": line.line_no,
                        "prompt_speaker": prompt.speaker,
                    },
                }
            )
            k = j
    return rows
