"""Strategy C: questions about the source, answered in the character's voice by the teacher.

The teacher gets one chunk of the source at a time and returns JSON
`[{"question": ..., "answer": ...}]`. An answer counts as supported when enough of its
content words occur in the chunk and every name it uses occurs there too (or is the
character's own); unsupported answers are dropped and counted in the dataset card.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from personae.training.ingest import Chapter

_STOP = set(
    "a an the and or but if then so of to in on at by for with from as is are was were be been being "
    "i me my we our you your he him his she her it its they them their this that these those there here "
    "not no yes do does did have has had will would can could should shall may might must just very "
    "what who why how when where which about into over under again once more most some any all only "
    "than too also up down out off oh well yeah".split()
)


def chunks(
    chapters: Sequence[Chapter], names: Sequence[str], *, size: int = 1200
) -> list[tuple[Chapter, int, str]]:
    """(chapter, offset, text) windows of about `size` characters that mention the character."""
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(n) for n in names) + r")\b")
    out = []
    for ch in chapters:
        buf, start, pos = [], 0, 0
        for para in ch.text.split("\n\n"):
            if not buf:
                start = pos
            buf.append(para)
            pos += len(para) + 2
            if sum(map(len, buf)) >= size:
                text = "\n\n".join(buf)
                if pattern.search(text):
                    out.append((ch, start, text))
                buf = []
        if buf and pattern.search("\n\n".join(buf)):
            out.append((ch, start, "\n\n".join(buf)))
    return out


def content_words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 2 and w not in _STOP]


def support(answer: str, chunk: str, own_names: Sequence[str] = ()) -> tuple[float, list[str]]:
    """(share of the answer's content words found in the chunk, names not in the chunk)."""
    words = content_words(answer)
    chunk_words = set(content_words(chunk))
    # crude stemming: "rowed" supports "row", "maps" supports "map"
    stems = {w[:5] for w in chunk_words}
    share = sum(1 for w in words if w in chunk_words or w[:5] in stems) / max(1, len(words))
    own = {p for n in own_names for p in n.split()}
    names = {
        m.group(0)
        for m in re.finditer(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]{2,}\b", answer)
        if m.group(0) not in own and m.group(0) not in ("I", "I'm", "I've")
    }
    missing = sorted(n for n in names if n not in chunk)
    return share, missing


def teacher_messages(chunk: str, character_name: str, style: str, n: int) -> list[dict[str, str]]:
    return [
        {
            "role": "system",
            "content": "You write training data for a game character. Answer only from the given text; "
            "never invent facts. Reply with JSON only.",
        },
        {
            "role": "user",
            "content": f"Text:\n\n{chunk}\n\nWrite {n} questions a visitor might ask {character_name} about "
            f"this text, each answered by {character_name} in the first person, in their own voice "
            f"(speaking style: {style or 'natural'}), in one to three short spoken sentences, using only "
            'facts in the text. Reply as JSON: [{"question": "...", "answer": "..."}]',
        },
    ]
