"""Everything a session sends, in two lanes: control overtakes data.

Control events (errors, speech started, routing, response.created) go out at once.
Response payload (text and audio deltas, sentences, response.done) waits in a bounded
data lane, and reply audio is paced so it runs at most `lead_ms` ahead of real time:
a barge-in then drops what the player has not been sent yet, and a slow client cannot
grow memory without limit.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Awaitable, Callable

from personae.sdk import protocol as p


class SlowClientError(Exception):
    """The client stopped reading; the session ends with close code 1008."""


def audio_ms(n_bytes: int, sample_rate: int) -> int:
    return round(n_bytes / 2 * 1000 / sample_rate)


class Outbox:
    def __init__(
        self,
        send: Callable[[p.ServerEvent], Awaitable[None]],
        *,
        data_frames: int,
        control_frames: int = 256,
        lead_ms: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send
        self._control: collections.deque[p.ServerEvent] = collections.deque()
        self._data: collections.deque[p.ServerEvent] = collections.deque()
        self._control_max = control_frames
        self._data_max = data_frames
        self._lead = lead_ms / 1000
        self._clock = clock
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        #: set whenever queued payload leaves or is dropped
        self._progress = asyncio.Event()
        #: recently cancelled responses: a producer still blocked on a full lane when its
        #: response was dropped must not slip one more event in after the drop
        self._dropped: collections.deque[str] = collections.deque(maxlen=32)
        #: response id -> (clock at its first audio byte, ms of audio sent)
        self._playback: dict[str, tuple[float, int]] = {}
        self.audio_sent_ms: dict[str, int] = {}
        #: item id -> PCM16 bytes of its audio sent (recent items): truncate's limit
        self._item_bytes: collections.OrderedDict[str, int] = collections.OrderedDict()
        #: response id -> clock when the audio sent of it ends playing (recent responses)
        self._audio_ends: collections.OrderedDict[str, float] = collections.OrderedDict()
        #: the session's output rate, for counting milliseconds sent
        self.output_sample_rate = 24000
        #: told of each reply audio chunk as it leaves: (response id, clock when it is
        #: due to play, PCM16, rate); the echo check's reference (echo.FarEnd.play)
        self.on_audio: Callable[[str, float, bytes, int], None] | None = None

    def control(self, event: p.ServerEvent) -> None:
        if len(self._control) >= self._control_max:
            raise SlowClientError("client is not reading events")
        self._control.append(event)
        self._wake.set()

    async def data(self, event: p.ServerEvent) -> None:
        """Queue response payload; waits while the data lane is full (backpressure)."""
        while len(self._data) >= self._data_max:
            self._room.clear()
            await self._room.wait()
        if getattr(event, "response_id", None) in self._dropped:
            return
        self._data.append(event)
        self._wake.set()

    def drop_response(self, response_id: str) -> None:
        """Forget queued payload of a cancelled response; what was sent stays sent."""
        self._dropped.append(response_id)
        self._data = collections.deque(
            e for e in self._data if getattr(e, "response_id", None) != response_id
        )
        self._room.set()
        self._progress.set()

    def pending(self, response_id: str) -> bool:
        return any(getattr(e, "response_id", None) == response_id for e in self._data)

    async def drained(self, response_id: str) -> None:
        """Wait until this response's queued payload has gone out or been dropped."""
        while self.pending(response_id):
            self._progress.clear()
            await self._progress.wait()

    def playing_for(self, response_id: str) -> float:
        """Seconds until the audio sent of a response has played out at the client, if
        it plays each chunk as it arrives (0 when it has, or when none was sent)."""
        end = self._audio_ends.get(response_id)
        return 0.0 if end is None else max(0.0, end - self._clock())

    def _take(self) -> list[p.ServerEvent]:
        """The next payload to send: one event, or an `npc.viseme` with the audio chunk
        after it, so lip-sync never goes out for audio a barge-in then drops. ([] while
        a viseme waits for its chunk.)"""
        if not isinstance(self._data[0], p.NpcViseme):
            return [self._data.popleft()]
        if len(self._data) < 2:
            return []
        return [self._data.popleft(), self._data.popleft()]

    def item_audio_ms(self, item_id: str) -> int | None:
        """Milliseconds of an item's audio sent so far (None: none, or long ago)."""
        sent = self._item_bytes.get(item_id)
        return None if sent is None else audio_ms(sent, self.output_sample_rate)

    def _due(self, event: p.ServerEvent) -> float:
        """Seconds until this audio chunk may go out (0 = now)."""
        if isinstance(event, p.NpcViseme) and len(self._data) > 1:
            event = self._data[1]  # goes out with the audio chunk after it
        if not isinstance(event, p.OutputAudioDelta) or self._lead <= 0:
            return 0.0
        start = self._playback.get(event.response_id)
        if start is None:
            return 0.0
        return max(0.0, start[0] + event.offset_ms / 1000 - self._lead - self._clock())

    async def _emit(self, event: p.ServerEvent) -> None:
        if isinstance(event, p.ResponseDone):
            # counted here, at the moment it leaves: exactly what the client received
            event.response.audio_sent_ms = self.audio_sent_ms.pop(event.response.id, 0)
        await self._send(event)

    async def run(self) -> None:
        while True:
            if self._control:
                await self._emit(self._control.popleft())
                continue
            if self._data:
                wait = self._due(self._data[0])
                if wait <= 0 and (batch := self._take()):
                    self._room.set()
                    for event in batch:  # taken together: a drop cannot come between
                        self._account(event)
                        await self._emit(event)
                    self._progress.set()
                    continue
                self._wake.clear()
                # asyncio.timeout: wait_for can swallow the session's cancellation (3.11)
                with contextlib.suppress(TimeoutError):
                    # (None: a viseme waits for its audio chunk, which wakes us)
                    async with asyncio.timeout(wait if wait > 0 else None):
                        await self._wake.wait()
                continue
            self._wake.clear()
            await self._wake.wait()

    def _account(self, event: p.ServerEvent) -> None:
        if isinstance(event, p.OutputAudioDelta):
            rid = event.response_id
            if rid not in self._playback:
                self._playback[rid] = (self._clock() - event.offset_ms / 1000, 0)
            self.audio_sent_ms[rid] = self.audio_sent_ms.get(rid, 0) + audio_ms(
                len(event.delta), self.output_sample_rate
            )
            played = event.offset_ms + audio_ms(len(event.delta), self.output_sample_rate)
            self._audio_ends[rid] = self._playback[rid][0] + played / 1000
            item = event.item_id
            self._item_bytes[item] = self._item_bytes.get(item, 0) + len(event.delta)
            self._item_bytes.move_to_end(item)
            while len(self._item_bytes) > 32:
                self._item_bytes.popitem(last=False)
            if self.on_audio is not None:
                due = self._playback[rid][0] + event.offset_ms / 1000
                self.on_audio(rid, due, event.delta, self.output_sample_rate)
            self._audio_ends.move_to_end(rid)
            while len(self._audio_ends) > 32:
                self._audio_ends.popitem(last=False)
        elif isinstance(event, p.ResponseDone):
            self._playback.pop(event.response.id, None)
