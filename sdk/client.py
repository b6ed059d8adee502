"""Async client for the personae daemon: connect, talk, and read typed events.

    async with await connect("ws://127.0.0.1:8765/v1/realtime") as session:
        await session.update(characters=["bram", "mara"])
        reply = await session.say("Bram, can you fix my sword?")
        print(reply.character, reply.text)
        open("bram.pcm", "wb").write(reply.audio)

`say` and `speak` collect one whole reply; `events()` streams everything as it comes
for games that play audio as it arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from personae.sdk import protocol as p
from personae.sdk.framing import FrameError, Framing, decode_server, encode

DEFAULT_URL = "ws://127.0.0.1:8765/v1/realtime"


class PersonaeError(Exception):
    """The daemon sent an `error` event while a call was waiting on it."""

    def __init__(self, error: p.ErrorInfo) -> None:
        super().__init__(f"{error.code}: {error.message}")
        self.error = error


@dataclass
class Reply:
    """One character's whole response, as `say`/`speak` return it."""

    response: p.ResponseInfo
    transcript: str | None = None  # what the daemon heard, for spoken turns
    route: p.NpcRoute | None = None
    sentences: list[p.NpcSentence] = field(default_factory=list)
    audio: bytes = b""  # PCM16 mono at `sample_rate`
    events: list[p.ServerEvent] = field(default_factory=list)

    @property
    def character(self) -> str:
        return self.response.character

    @property
    def partial_transcripts(self) -> list[str]:
        """The player's turn as it was transcribed while they spoke, growing."""
        deltas = [e.delta for e in self.events if isinstance(e, p.TranscriptionDelta)]
        return ["".join(deltas[: i + 1]) for i in range(len(deltas))]

    @property
    def text(self) -> str:
        return self.response.output_text

    @property
    def actions(self) -> list[p.NpcAction]:
        """The declared actions the character did in this reply (`npc.action` kind "game"):
        execute each and answer with `Session.action_result(action.action_id, ...)`."""
        return [e for e in self.events if isinstance(e, p.NpcAction) and e.kind == "game"]

    @property
    def visemes(self) -> list[p.Viseme]:
        """The reply's mouth shapes (`npc.viseme`), timed on `audio` in milliseconds."""
        return [v for e in self.events if isinstance(e, p.NpcViseme) for v in e.visemes]

    @property
    def words(self) -> list[p.WordTiming]:
        """The reply's spoken words, timed on `audio` in milliseconds."""
        return [w for e in self.events if isinstance(e, p.NpcViseme) for w in e.words]

    @property
    def status(self) -> str:
        return self.response.status

    @property
    def sample_rate(self) -> int:
        return self.response.output_sample_rate or 24000


@dataclass
class Exchange:
    """Characters talking to each other (`npc.converse`), as `converse` returns it."""

    started: p.NpcExchangeStarted
    done: p.NpcExchangeDone
    #: each line as a Reply, in the order they were spoken
    replies: list[Reply] = field(default_factory=list)
    #: `npc.exchange.line` of each line: who, the adapter, what was heard
    lines: list[p.NpcExchangeLine] = field(default_factory=list)
    events: list[p.ServerEvent] = field(default_factory=list)

    @property
    def reason(self) -> str:
        return self.done.reason

    @property
    def speakers(self) -> list[str]:
        return [line.character for line in self.lines]


class Session:
    """A live conversation. Events arrive on a background task into a bounded queue."""

    def __init__(self, ws: ClientConnection, framing: Framing) -> None:
        self._ws = ws
        self.framing = framing
        self._events: asyncio.Queue[p.ServerEvent | BaseException] = asyncio.Queue(4096)
        self.session: p.Session | None = None
        self._reader = asyncio.create_task(self._read(), name="personae-reader")

    async def _read(self) -> None:
        try:
            async for frame in self._ws:
                try:
                    event, _ = decode_server(frame)
                except FrameError as exc:
                    if exc.code == "unknown_event":
                        continue  # a newer daemon: ignore what we do not know
                    raise
                if isinstance(event, p.SessionCreated | p.SessionUpdated):
                    self.session = event.session
                await self._events.put(event)
        except (websockets.ConnectionClosed, FrameError) as exc:
            await self._events.put(exc)
        else:
            await self._events.put(websockets.ConnectionClosedOK(None, None))

    # ---------------------------------------------------------------- sending

    async def send(self, event: p.ClientEvent) -> None:
        await self._ws.send(encode(event, self.framing, only_set=True))

    async def update(self, **fields: Any) -> p.Session:
        """Change session settings (see protocol.SessionConfig); waits for the echo."""
        await self.send(p.SessionUpdate(session=p.SessionConfig(**fields)))
        event = await self.wait_for("session.updated")
        assert isinstance(event, p.SessionUpdated)
        return event.session

    async def append_audio(self, pcm16: bytes, *, chunk_ms: int = 100) -> None:
        """Stream PCM16 mono at the session's input rate, in chunks of `chunk_ms`."""
        rate = self.session.input_sample_rate if self.session else 16000
        step = max(2, rate * chunk_ms // 1000 * 2)
        for i in range(0, len(pcm16), step):
            await self.send(p.InputAudioBufferAppend(audio=pcm16[i : i + step]))

    async def commit(self, *, respond: bool = True) -> None:
        """Push-to-talk: the player released the key."""
        await self.send(p.InputAudioBufferCommit())
        if respond:
            await self.send(p.ResponseCreate())

    async def add_text(self, text: str) -> None:
        await self.send(p.ConversationItemCreate(item=p.Item(content=[p.ContentPart(text=text)])))

    async def respond(
        self, *, character: str | None = None, instructions: str | None = None
    ) -> None:
        await self.send(
            p.ResponseCreate(
                response=p.ResponseOptions(character=character, instructions=instructions)
            )
        )

    async def cancel(self) -> None:
        await self.send(p.ResponseCancel())

    async def game_event(
        self, name: str, description: str = "", *, characters: list[str] | None = None, **data: Any
    ) -> None:
        await self.send(
            p.GameEvent(name=name, description=description, characters=characters, data=data)
        )

    async def trigger(
        self, character: str, trigger: str, *, timeout: float = 120.0, **parameters: Any
    ) -> Reply:
        """Fire a trigger declared in `character`'s file; returns the reply it gets."""
        await self.send(p.GameTrigger(character=character, trigger=trigger, parameters=parameters))
        return await self.collect_reply(timeout=timeout)

    async def action_result(self, action_id: str, status: str = "done", reason: str = "") -> None:
        """What became of an action ("done", "refused" or "failed"): the character remembers."""
        await self.send(
            p.GameActionResult(action_id=action_id, status=status, reason=reason)  # type: ignore[arg-type]
        )

    # ---------------------------------------------------------------- receiving

    async def next_event(self, timeout: float | None = None) -> p.ServerEvent:
        async with asyncio.timeout(timeout):
            item = await self._events.get()
        if isinstance(item, BaseException):
            await self._events.put(item)  # every later call sees the same end
            raise item
        return item

    async def events(self) -> AsyncIterator[p.ServerEvent]:
        """Every event until the connection closes."""
        while True:
            try:
                yield await self.next_event()
            except websockets.ConnectionClosed:
                return

    async def wait_for(self, *types: str, timeout: float = 30.0) -> p.ServerEvent:
        """The next event of one of `types`; an `error` event raises PersonaeError."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.next_event()
                if event.type in types:
                    return event
                if isinstance(event, p.Error):
                    raise PersonaeError(event.error)

    async def collect_reply(self, *, timeout: float = 120.0) -> Reply:
        """Gather events up to the next `response.done` into a Reply.

        An `error` before the response starts raises PersonaeError; a reply that fails
        midway comes back with status "failed".
        """
        transcript: str | None = None
        route: p.NpcRoute | None = None
        events: list[p.ServerEvent] = []
        audio = bytearray()
        sentences: list[p.NpcSentence] = []
        started = False
        async with asyncio.timeout(timeout):
            while True:
                event = await self.next_event()
                events.append(event)
                match event:
                    case p.TranscriptionCompleted(transcript=t):
                        transcript = t
                    case p.NpcRoute():
                        route = event
                    case p.ResponseCreated():
                        started = True
                    case p.OutputAudioDelta(delta=d):
                        audio += d
                    case p.NpcSentence():
                        sentences.append(event)
                    case p.Error(error=err) if not started:
                        raise PersonaeError(err)
                    case p.ResponseDone(response=info):
                        return Reply(info, transcript, route, sentences, bytes(audio), events)

    async def say(
        self, text: str, *, character: str | None = None, timeout: float = 120.0
    ) -> Reply:
        """A typed line from the player; returns the reply it gets."""
        await self.add_text(text)
        await self.respond(character=character)
        return await self.collect_reply(timeout=timeout)

    async def speak(self, pcm16: bytes, *, timeout: float = 120.0) -> Reply:
        """Spoken audio from the player (PCM16 at the session's input rate); returns the reply.

        With server VAD the daemon ends the turn itself; silence is appended so it hears
        the pause. In push-to-talk mode the turn is committed explicitly.
        """
        await self.append_audio(pcm16)
        vad = self.session is None or self.session.turn_detection is not None
        if vad:
            rate = self.session.input_sample_rate if self.session else 16000
            await self.append_audio(bytes(2 * rate))  # one second of silence ends the turn
        else:
            await self.commit()
        return await self.collect_reply(timeout=timeout)

    async def start_exchange(
        self, characters: Iterable[str], topic: str, *, lines: int = 4
    ) -> None:
        """Characters in the scene talk to each other about `topic`; the first opens.
        Their lines arrive as ordinary responses (see `collect_exchange`)."""
        await self.send(p.NpcConverse(characters=list(characters), topic=topic, lines=lines))

    async def collect_exchange(self, *, timeout: float = 300.0) -> Exchange:
        """Gather events up to the next `npc.exchange.done` into an Exchange. An `error`
        before the exchange starts raises PersonaeError (it was refused)."""
        started: p.NpcExchangeStarted | None = None
        events: list[p.ServerEvent] = []
        lines: list[p.NpcExchangeLine] = []
        replies: dict[str, Reply] = {}
        async with asyncio.timeout(timeout):
            while True:
                event = await self.next_event()
                events.append(event)
                match event:
                    case p.Error(error=err) if started is None:
                        raise PersonaeError(err)
                    case p.NpcExchangeStarted():
                        started = event
                    case p.ResponseCreated(response=info):
                        replies[info.id] = Reply(info)
                    case p.OutputAudioDelta() if event.response_id in replies:
                        replies[event.response_id].audio += event.delta
                    case p.NpcSentence() if event.response_id in replies:
                        replies[event.response_id].sentences.append(event)
                    case p.ResponseDone(response=info) if info.id in replies:
                        replies[info.id].response = info
                    case p.NpcExchangeLine():
                        lines.append(event)
                    case p.NpcExchangeDone() if started is not None:
                        spoken = [replies[line.response_id] for line in lines]
                        for reply in spoken:
                            reply.events = [
                                e for e in events if _response_of(e) == reply.response.id
                            ]
                        return Exchange(started, event, spoken, lines, events)

    async def converse(
        self, characters: Iterable[str], topic: str, *, lines: int = 4, timeout: float = 300.0
    ) -> Exchange:
        """Characters talk to each other about `topic`; returns the whole exchange."""
        await self.start_exchange(characters, topic, lines=lines)
        return await self.collect_exchange(timeout=timeout)

    async def close(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _response_of(event: p.ServerEvent) -> str | None:
    if isinstance(event, p.ResponseCreated | p.ResponseDone):
        return event.response.id
    return getattr(event, "response_id", None)


async def connect(
    url: str = DEFAULT_URL,
    *,
    framing: Framing | str = Framing.MSGPACK,
    characters: Iterable[str] | None = None,
    open_timeout: float = 10.0,
    **session_fields: Any,
) -> Session:
    """Open a session; waits for `session.created` and applies any session fields."""
    ws = await websockets.connect(
        url,
        subprotocols=[p.SUBPROTOCOL],
        max_size=None,
        open_timeout=open_timeout,  # type: ignore[list-item]
    )
    session = Session(ws, Framing(framing))
    try:
        await session.wait_for("session.created", timeout=open_timeout)
        if characters is not None:
            session_fields["characters"] = list(characters)
        if session_fields:
            await session.update(**session_fields)
    except BaseException:
        await session.close()
        raise
    return session
