"""Cut streamed LLM text into sentences, so TTS can start on the first one."""

from __future__ import annotations

import re

_ABBREVIATIONS = frozenset(
    "mr mrs ms dr st sr jr prof capt col gen lt sgt mt ft vs etc e.g i.e no vol fig approx".split()
)
# A terminator run, optional closing quotes/brackets/asterisks, then whitespace.
_BOUNDARY = re.compile(r"([.!?…]+|\n+)([\"'”’)\]*]*)(\s+)")
_CLAUSE = re.compile(r"[,;:—–]\s+")
#: words a first piece is cut before: speech pauses there naturally
_CONJUNCTIONS = frozenset(
    "and but or so because yet though although while unless until whereas".split()
)
#: words a first piece is not cut after: they lean on the word that follows ("for | you")
_LEANING = frozenset(
    """a an the my your his her its our their this that these those to of for in on at
    with from by into onto about as than some any no every each""".split()
)
# Stage directions and emotes are shown, never spoken: *sighs*, (laughs), [grins],
# <action>waves</action>, <emotion>angry</emotion>; other markup tags are not spoken.
_STAGE = re.compile(
    r"\*(?P<star>[^*]*)\*|\((?P<paren>[^)]*)\)|\[(?P<square>[^\]]*)\]"
    r"|<(?P<tag>action|act|gesture|stage|emote|emotion|mood|feeling|tone|expression|anim"
    r"|animation|pose|sfx|sound)(?:\s[^<>]*)?>(?P<inner>[^<>]*)</(?P=tag)\s*>"
    # any other markup tag is dropped and its content spoken: "<b>now</b>" says "now"
    r"|</?[A-Za-z][\w-]{0,31}(?:\s[^<>]*)?/?>",
    re.IGNORECASE,
)
#: tag names and bracketed words that say how the character feels, not what it does
_EMOTION_TAGS = frozenset({"emotion", "mood", "feeling", "tone", "expression"})
_EMOTION_WORDS = frozenset(
    """happy glad joyful joy cheerful excited amused laughing sad sadness sorrowful crying
    angry anger furious annoyed irritated mad afraid scared fear fearful nervous anxious
    worried surprised surprise shocked disgusted disgust calm neutral serious tired bored
    proud ashamed embarrassed shy curious confused suspicious smug sarcastic gentle warm
    cold stern playful teasing solemn grim hopeful relieved""".split()
)


class SentenceSplitter:
    """Feed text deltas with `push`; get complete sentences back as soon as they end.

    A terminator only counts once the whitespace after it has arrived, so "3.5" or "Mr.
    Holloway" never split, and never inside a stage direction, which may hold several
    sentences. A sentence longer than `max_chars` is cut at a clause
    boundary so a rambling reply still starts speaking early.

    With `first_clause_chars`, the reply's first piece may end at a clause boundary
    ("Aye, the forge burns hot,") once it is that long: speech starts a clause earlier,
    about the time of the tokens that clause saves. Never inside a stage direction.

    With `first_words`, the first piece ends earlier still, at the first natural break
    once `first_min_words` spoken words have arrived: a clause mark ("Well now,"), just
    before a conjunction ("I can mend it | and..."), or after `first_words` words
    (one or two more when the last leans on the next: "for | you" is not a break).
    Later pieces stay sentence-sized, for prosody.
    """

    def __init__(
        self,
        *,
        max_chars: int = 160,
        first_clause_chars: int = 0,
        first_words: int = 0,
        first_min_words: int = 2,
    ) -> None:
        if first_words and not 1 <= first_min_words <= first_words:
            raise ValueError("first_min_words must be between 1 and first_words")
        self._buf = ""
        self._max = max_chars
        self._first_clause = first_clause_chars
        self._first_words = first_words
        self._first_min = first_min_words
        self._started = False  # a piece has been emitted

    def push(self, delta: str) -> list[str]:
        self._buf += delta
        out: list[str] = []
        start = 0
        for m in _BOUNDARY.finditer(self._buf):
            end = m.end(2)
            if m.group(1)[0] == "." and self._is_abbreviation(self._buf[start : m.start(1)]):
                continue
            if _open_direction(self._buf[start:end]) and end - start < self._max:
                # "*He sighs. Then he smiles.*" is one direction: not spoken in halves
                # (a stray "*" holds a sentence back only up to max_chars)
                continue
            sentence = self._buf[start:end].strip()
            if sentence:
                out.append(sentence)
            start = m.end(3)
        self._buf = self._buf[start:]
        while len(self._buf) > self._max:
            cut = self._clause_cut(self._buf)
            if cut is None:
                break
            out.append(self._buf[:cut].strip())
            self._buf = self._buf[cut:].lstrip()
        if not out and not self._started and self._first_words:
            cut = self._first_words_cut(self._buf)
            if cut is not None:
                out.append(self._buf[:cut].strip())
                self._buf = self._buf[cut:].lstrip()
        if not out and not self._started and self._first_clause:
            cut = self._first_clause_cut(self._buf)
            if cut is not None:
                out.append(self._buf[:cut].strip())
                self._buf = self._buf[cut:].lstrip()
        self._started = self._started or bool(out)
        return out

    def flush(self) -> list[str]:
        rest, self._buf = self._buf.strip(), ""
        return [rest] if rest else []

    @staticmethod
    def _is_abbreviation(before: str) -> bool:
        words = before.split()
        if not words:
            return False
        last = words[-1].lower().rstrip(".")
        # a single capital ("J. R. R.") or a known abbreviation
        return last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha())

    def _first_clause_cut(self, text: str) -> int | None:
        for m in _CLAUSE.finditer(text):
            head = text[: m.start()]
            if len(head) < self._first_clause or len(head.split()) < 3:
                continue
            if _open_direction(head):
                return None  # a comma inside "*wipes hands, smiles*": wait for the sentence
            return m.end()
        return None

    def _first_words_cut(self, text: str) -> int | None:
        """Where the first piece ends, once its words are complete (whitespace after)."""
        for m in re.finditer(r"\S+(?=\s)", text):
            head = text[: m.end()]
            if _open_direction(head):
                continue  # words of "*wipes her hands, then*" are not spoken
            words = spoken_text(head).split()
            n = len(words)
            if n == 0 or spoken_text(m.group()) == "":
                continue
            word = words[-1]
            if word.lower().strip("\"'“”‘’") in _CONJUNCTIONS:
                if n - 1 >= self._first_min:
                    return m.start()  # before the conjunction: it starts the next piece
                continue
            if n >= self._first_min and word[-1] in ",;:—–":
                return m.end()
            if n >= self._first_words:
                leaning = word.lower().strip("\"'“”‘’") in _LEANING
                if not leaning or n >= self._first_words + 2:
                    return m.end()
        return None

    def _clause_cut(self, text: str) -> int | None:
        best = None
        for m in _CLAUSE.finditer(text, 0, self._max):
            if m.start() >= 20:
                best = m.end()
        return best


def _open_direction(text: str) -> bool:
    """Whether `text` ends inside a stage direction or tag (*..., (..., [..., <...)."""
    return (
        text.count("*") % 2 == 1
        or text.count("(") > text.count(")")
        or text.count("[") > text.count("]")
        or text.count("<") > text.count(">")
        or len(re.findall(r"<[A-Za-z]", text)) > len(re.findall(r"</", text))
    )


def spoken_text(sentence: str) -> str:
    """What TTS should say: stage directions and tags removed, whitespace tidied."""
    return " ".join(_STAGE.sub(" ", sentence).split())


def stage_directions(sentence: str) -> list[tuple[str, str]]:
    """The (kind, text) of each stage direction in a sentence, in order.

    kind is "emotion" for an emotion tag (`<emotion>angry</emotion>`) or a bracketed
    feeling (`[angry]`, `(sadly)`), else "action" (`*waves*`, `<action>bows</action>`).
    Bare tags without content (`<break/>`) are dropped silently.
    """
    found: list[tuple[str, str]] = []
    for m in _STAGE.finditer(sentence):
        tag = m.group("tag")
        text = next(
            (
                g
                for g in (m.group("star"), m.group("paren"), m.group("square"), m.group("inner"))
                if g is not None
            ),
            None,
        )
        if text is None:
            continue
        text = " ".join(text.split())
        if not text:
            continue
        word = text.lower().removesuffix("ly")
        emotional = (tag is not None and tag.lower() in _EMOTION_TAGS) or (
            tag is None
            and " " not in text
            and (text.lower() in _EMOTION_WORDS or word in _EMOTION_WORDS)
        )
        found.append(("emotion" if emotional else "action", text))
    return found
