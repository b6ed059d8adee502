"""Strategy A: quoted speech with its speaker, and the line or narrative before it.

Attribution, strongest evidence first; a paragraph gets one speaker (the prose
convention), and when no rule is sure the line stays unattributed, because a wrong
speaker teaches a character someone else's voice (precision over recall):

1. a speech tag next to a quote: "said Bram", "Bram asked", "the smith said",
   "she muttered" (a pronoun resolved by continuity: the most recent character of
   those pronouns named in the narrative before it);
2. an action beat in the same paragraph: `Mara was already putting on her coat. "What kind?"`;
3. a beat closing the narrative paragraph just before a quote-only paragraph;
4. alternation in a two-person exchange: quote-only paragraphs directly after two
   paragraphs by A and B go B, A, B ... unless the line names its supposed speaker
   (people do not address themselves).

Names are the target characters' names and aliases, plus any capitalised name found
in a speech tag ("said Pike"), so minor characters take their own lines instead of
lending them to the cast.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from personae.training import names as tag_names
from personae.training.ingest import Chapter
from personae.training.quotes import Quote, find_quotes, is_dash_line

VERBS = (
    "said|says|asked|asks|replied|answered|called|shouted|cried|whispered|muttered|murmured|"
    "announced|added|repeated|snapped|growled|grunted|laughed|began|continued|admitted|"
    "agreed|demanded|insisted|protested|yelled|breathed|sighed|explained|declared|offered|"
    "wondered|exclaimed|remarked|observed|hissed|barked|chuckled|teased|warned|pleaded|"
    "suggested|whimpered|grumbled|roared|sang|went on|put in|shot back|remonstrated|"
    "interrupted|responded|ejaculated|read|kept repeating|ventured to remark|broke in"
)
PRONOUNS = {"he": "he", "him": "he", "his": "he", "she": "she", "her": "she", "they": "they"}
_NOT_NAMES = {
    "He",
    "She",
    "They",
    "It",
    "I",
    "We",
    "You",
    "The",
    "A",
    "An",
    "Then",
    "And",
    "But",
    "So",
    "Now",
    "There",
    "Here",
    "This",
    "That",
    "Someone",
    "Nobody",
    "Everyone",
    "Somebody",
    "Yes",
    "No",
    "Oh",
    "Well",
    "What",
    "Who",
    "Why",
    "How",
    "When",
    "Where",
    "His",
    "Her",
    "Their",
    "My",
    "Our",
    "Your",
}


@dataclass(frozen=True)
class Speaker:
    """Someone who may speak: an id, the surface forms of their name, their pronouns."""

    id: str
    names: tuple[str, ...]
    pronouns: str = "they"  # "he" | "she" | "they" (unknown)

    @classmethod
    def from_character(
        cls, character, pronouns: str = "they", aliases: Iterable[str] = ()
    ) -> Speaker:  # type: ignore[no-untyped-def]
        full = character.name
        names = [full, *character.aliases, *aliases]
        first = full.split()[0]
        if first not in names:
            names.append(first)
        return cls(character.id, tuple(dict.fromkeys(n for n in names if n)), pronouns)


@dataclass
class Utterance:
    """One paragraph's speech. Offsets are in the chapter's text."""

    chapter: int
    paragraph: int
    start: int
    text: str
    speaker: str | None
    method: str
    #: opening-mark offsets of each quote merged into `text`
    quote_starts: list[int] = field(default_factory=list)


@dataclass
class _Para:
    index: int
    start: int
    text: str
    quotes: list[Quote]
    narrative: str  # the paragraph with quotes blanked out (same length)
    dash: bool = False
    #: chapter offsets of the continuation paragraphs merged into this one's last quote
    continued: list[int] = field(default_factory=list)

    @property
    def has_speech(self) -> bool:
        return bool(self.quotes)

    @property
    def narrative_only(self) -> bool:
        return not self.quotes and bool(self.text.strip())


class Attributor:
    def __init__(
        self,
        speakers: Sequence[Speaker],
        *,
        extra_names: Iterable[str] = (),
        narrator: str | None = None,
    ) -> None:
        """`narrator`: the id of a first-person narrator among `speakers` ("said I")."""
        self.speakers = {s.id: s for s in speakers}
        self.narrator = narrator
        self.surface: dict[str, str] = {}
        for s in speakers:
            for n in s.names:
                self.surface.setdefault(n.lower() if n.lower().startswith("the ") else n, s.id)
        if narrator is not None:
            if narrator not in self.speakers:
                raise ValueError(f"narrator {narrator!r} is not one of the speakers")
            self.surface["I"] = narrator
        for n in extra_names:
            self.surface.setdefault(n, n.lower().replace(" ", "-"))
        self._tag_counts: dict[str, int] = {}
        self._learnt: set[str] = set()  # ids of minor characters learnt from tags
        self._tags_seen: set[tuple[str, int]] = set()
        self._compile()

    def _compile(self) -> None:
        names = sorted(self.surface, key=len, reverse=True)
        alts = "|".join(
            (r"(?i:the)\s+" + re.escape(n[4:])) if n.startswith("the ") else re.escape(n)
            for n in names
        )
        cap = rf"(?:{tag_names.TITLES}\.?\s+)?[A-Z][a-z]+(?:\.?\s+[A-Z][a-z]+)?"
        self.name_re = re.compile(rf"\b(?:{alts})\b" if alts else r"(?!x)x")

        def nm(group: str) -> str:
            return rf"(?P<{group}>{alts + '|' if alts else ''}{cap}|[Hh]e|[Ss]he|[Tt]hey)"

        verb = rf"(?:{VERBS})"
        # after a quote: `, said Bram` / `, Bram said` / `he asked`
        self.after_re = re.compile(
            rf"^[\s,]*(?:{verb}\s+{nm('name')}\b|{nm('name2')}\s+(?:\w+ly\s+)?{verb}\b)"
        )
        # before a quote: `Bram said, "...` / `Mara asked: "...`
        self.before_re = re.compile(
            rf"(?:{nm('name')}\s+(?:\w+ly\s+)?{verb}|{verb}\s+{nm('name2')})\s*[,:]?\s*$"
        )
        # inside a dash line: `— Yes, said Bram. Badly.`
        self.dash_re = re.compile(
            rf",\s+(?:{verb}\s+{nm('name')}|{nm('name2')}\s+(?:\w+ly\s+)?{verb})"
            rf"(?:\s+[a-z][^.?!]*)?(?P<end>[.?!])"
        )

    # --- names -------------------------------------------------------------------------
    def resolve(self, surface: str) -> str | None:
        """A speaker id for a name in a tag, or None for a pronoun or a non-name."""
        key = surface.lower() if surface.lower().startswith("the ") else surface
        key = re.sub(r"\s+", " ", key)
        if key in self.surface:
            return self.surface[key]
        first = surface.split()[0]
        if first in self.surface:
            return self.surface[first]
        # a name nobody gave and no confident pattern found: unsure, never invented
        return None

    def _confident_name(self, surface: str) -> str | None:
        """A tag's capitalised words as a person's name, or None: pronouns, lone titles,
        common words and places ("Baker Street") are not names."""
        surface = re.sub(r"\s+", " ", surface).strip()
        words = surface.replace(".", "").split()
        if not words or surface.lower() in PRONOUNS or words[0] in _NOT_NAMES:
            return None
        if words[-1] in tag_names.PLACES or re.fullmatch(tag_names.TITLES, words[-1]):
            return None
        return surface

    def _learn(self, surface: str) -> None:
        """Count a confident name seen in a speech tag; at `MIN_TAGS` tags it becomes a speaker."""
        name = self._confident_name(surface)
        if name is None or self.resolve(name) is not None:
            return
        # "Jones" and "Athelney Jones" are one person: a name that ends another learnt
        # name, or is ended by it, joins that speaker
        words = tag_names.bare(name)
        for known, sid in list(self.surface.items()):
            k = tag_names.bare(known)
            if sid in self._learnt and (k[-len(words) :] == words or words[-len(k) :] == k):
                self.surface[name] = sid
                self._compile()
                return
        self._tag_counts[name] = self._tag_counts.get(name, 0) + 1
        if self._tag_counts[name] >= tag_names.MIN_TAGS:
            sid = re.sub(r"[^a-z]+", "-", name.lower()).strip("-")
            self._learnt.add(sid)
            self.surface[name] = sid  # a minor character, now known for continuity
            self.speakers.setdefault(sid, Speaker(sid, (name,)))
            self._compile()

    def mentions(self, narrative: str) -> list[tuple[int, str]]:
        return [
            (m.start(), self.surface[self._key(m.group(0))])
            for m in self.name_re.finditer(narrative)
        ]

    def _key(self, s: str) -> str:
        s = re.sub(r"\s+", " ", s)
        return s.lower() if s.lower().startswith("the ") else s

    # --- paragraphs --------------------------------------------------------------------
    def paragraphs(self, text: str) -> list[_Para]:
        paras: list[_Para] = []
        pos = 0
        speech: _Para | None = None  # the paragraph whose speech is still open
        for i, raw in enumerate(text.split("\n\n")):
            start, para = pos, raw
            pos += len(raw) + 2
            dash = is_dash_line(para)
            if dash:
                quotes = [Quote(0, len(para), para[1:].strip())]
            else:
                quotes = find_quotes(para)
                # a continuation paragraph of a speech of any number of paragraphs: it opens
                # with a quote mark while the speech before is still open
                if speech is not None and quotes and quotes[0].start == 0:
                    last = speech.quotes[-1]
                    speech.quotes[-1] = Quote(
                        last.start,
                        last.end,
                        last.text + " " + quotes[0].text,
                        open_ended=quotes[0].open_ended,
                    )
                    speech.continued.append(start)
                    rest = quotes[1:]
                    if not quotes[0].open_ended:
                        speech = None
                    if not rest:
                        paras.append(_Para(i, start, para, [], para))
                        continue
                    # speech goes on in this paragraph after the continuation closed
                    quotes = rest
            narrative = para
            if not dash:
                for q in quotes:
                    narrative = narrative[: q.start] + " " * (q.end - q.start) + narrative[q.end :]
            else:
                narrative = ""
            paras.append(_Para(i, start, para, quotes, narrative, dash))
            speech = paras[-1] if quotes and quotes[-1].open_ended and not dash else None
        return paras

    # --- attribution -------------------------------------------------------------------
    def _pronoun(
        self, pronoun: str, paras: list[_Para], k: int, pos: int, history: list | None = None
    ) -> str | None:
        """Most recent named speaker with these pronouns before `pos` in paragraph k."""
        gender = PRONOUNS.get(pronoun.lower())
        if gender in (None, "they"):
            return None
        spoke = dict(history or [])
        for j in range(k, max(-1, k - 5), -1):
            if j < k and j in spoke and spoke[j] is None and self._pronoun_tag(paras[j]):
                return tag_names.UNSURE  # an unknown "he said" in between: "he" may be him again

            narrative = paras[j].narrative if j < k else paras[j].narrative[:pos]
            marks = self.mentions(narrative) + [
                (m.start(), tag_names.STRANGER)
                for m in tag_names.STRANGERS[gender].finditer(narrative)
            ]
            for at, sid in sorted(marks, reverse=True):
                if sid == tag_names.STRANGER and not tag_names.PREDICATE.search(
                    narrative[max(0, at - 12) : at]
                ):
                    return tag_names.UNSURE  # someone unnamed ("a small, dark man") stands closer
                sp = self.speakers.get(sid)
                if sp is None or sid == self.narrator:  # "he" is never the one saying "I"
                    continue
                if sp.pronouns == gender:
                    return sid
                if sp.pronouns == "they":
                    return tag_names.UNSURE  # someone of unknown pronouns stands closer
        return None

    def _pronoun_tag(self, p: _Para) -> bool:
        for q in p.quotes:
            m = self.after_re.match(p.text[q.end :])
            if m and (m.group("name") or m.group("name2")).lower() in PRONOUNS:
                return True
        return False

    def _tag_name(
        self, m: re.Match[str], paras: list[_Para], k: int, pos: int, history: list | None = None
    ) -> str | None:
        name = m.group("name") or m.group("name2")
        if name.lower() in PRONOUNS:
            sid = self._pronoun(name, paras, k, pos, history)
            if sid is None and history is not None:
                sid = self._partner(name, history, k)
            return sid or None
        return self.resolve(name)

    def _partner(self, pronoun: str, history: list[tuple[int, str | None]], k: int) -> str | None:
        """With a narrator, "he said" in an exchange is the narrator's partner: the one
        speaker of those pronouns among the last few speech paragraphs."""
        gender = PRONOUNS.get(pronoun.lower())
        if self.narrator is None or gender in (None, "they"):
            return None
        recent = {sid for j, sid in history[-4:] if sid and sid != self.narrator and j >= k - 8}
        fits = {sid for sid in recent if self.speakers[sid].pronouns == gender}
        return fits.pop() if len(fits) == 1 else None

    def _tag(
        self, m: re.Match[str], paras: list[_Para], k: int, pos: int, history: list
    ) -> str | None:
        name = m.group("name") or m.group("name2")
        sid = self._tag_name(m, paras, k, pos, history)
        if name.lower() in PRONOUNS:  # a resolved pronoun is a guess; a name is not
            # ... and one that gives the speech just before (a beat between) to the same
            # speaker again is as likely someone else
            if history and history[-1][0] >= k - 2 and history[-1][1] == sid:
                return None
            return sid
        return sid

    def _subject(self, sentence: str, paras: list[_Para], k: int, pos: int) -> str | None:
        """The speaker a sentence starts with (`Mara was...`, `She pressed...`)."""
        m = re.match(r"\s*(?P<w>(?:[Tt]he\s+)?[A-Z][a-z]+(?:\s+[A-Z][a-z]+)?)", sentence)
        if not m:
            return None
        w = m.group("w")
        if w.split()[0].lower() in ("he", "she"):
            return self._pronoun(w.split()[0], paras, k, pos)
        hits = self.name_re.match(sentence.lstrip())
        if hits:
            return self.surface[self._key(hits.group(0))]
        return None

    def _only_speaker(self, sentence: str, sid: str) -> bool:
        """The sentence names no speaker other than `sid` (else the beat is unsure)."""
        return all(other == sid for _, other in self.mentions(sentence))

    @staticmethod
    def _new_speaker(sid: str | None, history: list[tuple[int, str | None]], k: int) -> str | None:
        """A new paragraph of speech is a new speaker: a guess that repeats the speaker of
        the speech paragraph just before is dropped."""
        if history and history[-1][0] >= k - 1 and history[-1][1] == sid:
            return None
        return sid

    def _addressee(self, para: _Para, speaker: str | None) -> str | None:
        """The one speaker a line calls by name ("..., Bram." / "Toby! ..."), if any."""
        found = set()
        for q in para.quotes:
            for m in self.name_re.finditer(q.text):
                before, after = q.text[: m.start()].rstrip(), q.text[m.end() :].lstrip()
                if (not before or before.endswith((",", ".", "!", "?"))) and (
                    not after or after[0] in ",.!?"
                ):
                    found.add(self.surface[self._key(m.group(0))])
        found.discard(speaker)  # type: ignore[arg-type]
        return found.pop() if len(found) == 1 else None

    def infer_pronouns(self, paras: list[_Para]) -> None:
        """Pronouns of minor characters: the pronoun that follows their name in narrative."""
        votes: dict[str, set[str]] = {}
        for p in paras:
            marks = self.mentions(p.narrative)
            for i, (pos, sid) in enumerate(marks):
                if self.speakers.get(sid) is None or self.speakers[sid].pronouns != "they":
                    continue
                end = marks[i + 1][0] if i + 1 < len(marks) else len(p.narrative)
                m = re.search(r"\b(he|she|his|her|him)\b", p.narrative[pos:end], re.IGNORECASE)
                if m:
                    votes.setdefault(sid, set()).add(PRONOUNS[m.group(1).lower()])
        for sid, genders in votes.items():
            if len(genders) == 1:
                sp = self.speakers[sid]
                self.speakers[sid] = Speaker(sp.id, sp.names, genders.pop())

    def discover(self, paras: list[_Para]) -> None:
        """Learn minor characters' names from speech tags ("said Pike") before attributing."""
        for p in paras:
            for q in p.quotes:
                m = (
                    self.after_re.match(p.text[q.end :])
                    if not p.dash
                    else self.dash_re.search(p.text)
                )
                if m and (p.text, q.end) not in self._tags_seen:
                    self._tags_seen.add((p.text, q.end))
                    name = m.group("name") or m.group("name2")
                    if name.lower() not in PRONOUNS:
                        self._learn(name)

    def _sentences(self, narrative: str) -> list[tuple[int, str]]:
        out = []
        for m in re.finditer(r"[^.!?]+[.!?]*", narrative):
            s = m.group(0)
            if s.strip():
                out.append((m.start() + len(s) - len(s.lstrip()), s.strip()))
        return out

    def attribute(
        self, paras: list[_Para], k: int, history: list[tuple[int, str | None]]
    ) -> tuple[str | None, str]:
        p = paras[k]
        if p.dash:
            m = self.dash_re.search(p.text)
            if m:
                return self._tag(m, paras, k, 0, history), "tag"
        else:
            for q in p.quotes:
                after = self.after_re.match(p.text[q.end :])
                if after:
                    return self._tag(after, paras, k, q.end, history), "tag"
                before = self.before_re.search(p.text[: q.start])
                if before and (
                    q is p.quotes[0] or not p.text[: q.start].strip().endswith((".", "!", "?"))
                ):
                    return self._tag(before, paras, k, q.start, history), "tag"
            # an action beat next to the speech: the sentence just before or after a quote
            sentences = self._sentences(p.narrative)
            near: list[tuple[int, str]] = []
            for q in p.quotes:
                before = [s for s in sentences if s[0] + len(s[1]) <= q.start]
                after = [s for s in sentences if s[0] >= q.end]
                near += before[-1:] + after[:1]
            for pos, sentence in dict.fromkeys(near):
                sid = self._subject(sentence, paras, k, pos)
                if sid and self._only_speaker(sentence, sid):
                    return self._new_speaker(sid, history, k), "beat"
        if not p.dash and p.narrative.strip():
            return None, "none"
        # quote-only paragraph: a beat closing the paragraph just before
        if k > 0 and paras[k - 1].narrative_only:
            sentences = self._sentences(paras[k - 1].narrative)
            if sentences:
                pos, last = sentences[-1]
                sid = self._subject(last, paras, k - 1, pos)
                # "I nodded." before a line is as often the narrator listening: unsure
                if sid and sid != self.narrator and self._only_speaker(last, sid):
                    return self._new_speaker(sid, history, k), "previous beat"
        # the line before addressed someone by name: they answer
        if history and history[-1][0] == k - 1:
            addressee = self._addressee(paras[k - 1], history[-1][1])
            if addressee:
                return addressee, "addressed"
        # alternation: ... A, B, [A]
        if len(history) >= 2:
            (k1, s1), (k2, s2) = history[-1], history[-2]
            if k1 == k - 1 and k2 == k - 2 and s1 and s2 and s1 != s2:
                spoken = " ".join(q.text for q in p.quotes)
                if not any(
                    self.surface.get(self._key(n)) == s2 for n in self.name_re.findall(spoken)
                ):
                    return s2, "alternation"
        return None, "none"


def _merge(quotes: list[Quote]) -> str:
    parts: list[str] = []
    for q in quotes:
        t = q.text.strip()
        if parts:
            if t[:1].islower():
                parts[-1] = parts[-1].rstrip()
            elif parts[-1].endswith(","):
                parts[-1] = parts[-1][:-1] + "."
        parts.append(t)
    text = " ".join(parts)
    return text[:-1] + "." if text.endswith(",") else text


def _dash_speech(attr: Attributor, para: str) -> str:
    body = para[1:].strip()
    m = attr.dash_re.search(body)
    if m:
        body = body[: m.start()] + m.group("end") + body[m.end() :]
    return body.strip()


def extract_all(chapters: Sequence[Chapter], attributor: Attributor) -> list[list[Utterance]]:
    """Utterances of every chapter; names from every chapter's tags are learnt first."""
    parsed = [attributor.paragraphs(ch.text) for ch in chapters]
    for paras in parsed:
        attributor.discover(paras)
    for paras in parsed:
        attributor.infer_pronouns(paras)
    return [extract_utterances(ch, attributor) for ch in chapters]


def extract_utterances(chapter: Chapter, attributor: Attributor) -> list[Utterance]:
    paras = attributor.paragraphs(chapter.text)
    attributor.discover(paras)
    out: list[Utterance] = []
    history: list[tuple[int, str | None]] = []
    for k, p in enumerate(paras):
        if not p.has_speech:
            continue
        speaker, method = attributor.attribute(paras, k, history)
        history.append((k, speaker))
        text = _dash_speech(attributor, p.text) if p.dash else _merge(p.quotes)
        out.append(
            Utterance(
                chapter=chapter.index,
                paragraph=k,
                start=p.start + p.quotes[0].start,
                text=text,
                speaker=speaker,
                method=method,
                quote_starts=[p.start + q.start for q in p.quotes] + p.continued,
            )
        )
    return out


def dialogue_examples(
    chapter: Chapter,
    utterances: list[Utterance],
    targets: set[str],
    *,
    context_paragraphs: int = 2,
    max_context_chars: int = 300,
) -> list[dict]:
    """(user, assistant) pairs: a target's line, after the line or narrative before it."""
    paras = chapter.text.split("\n\n")
    starts = []
    pos = 0
    for p in paras:
        starts.append(pos)
        pos += len(p) + 2
    by_para = {u.paragraph: u for u in utterances}
    examples = []
    for u in utterances:
        if u.speaker not in targets or not u.text:
            continue
        user = None
        source = "narrative"
        for back in range(1, context_paragraphs + 2):
            prev = by_para.get(u.paragraph - back)
            if prev is not None:
                if prev.speaker != u.speaker:
                    user, source = prev.text, "line"
                break
        if user is None and context_paragraphs:
            lo = max(0, u.paragraph - context_paragraphs)
            narrative = [paras[j] for j in range(lo, u.paragraph) if j not in by_para]
            own = paras[u.paragraph]
            own_narr = re.sub(r"[\"“‘].*?[\"”’](?=\W|$)", " ", own).strip(" ,.")
            text = " ".join(narrative).strip()
            if not text and len(own_narr) > 20:
                text = own_narr
            if text:
                user = (
                    text[-max_context_chars:].split(" ", 1)[-1]
                    if len(text) > max_context_chars
                    else text
                )
        if not user:
            continue
        examples.append(
            {
                "character": u.speaker,
                "strategy": "dialogue",
                "user": user,
                "assistant": u.text,
                "context": source,
                "method": u.method,
                "provenance": {
                    "file": chapter.source,
                    "chapter": chapter.index,
                    "chapter_title": chapter.title,
                    "offset": u.start,
                },
            }
        )
    return examples
