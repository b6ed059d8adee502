"""Admission control for replies: a few generate at once, a bounded number wait, the
rest are refused up front.

    admission = Admission(slots=4, queue=32, wait_s=30)
    async with admission.slot():        # ServerBusyError (`server_busy`) when it cannot
        ...generate...

A reply waiting here is queued, not stalled: the engine stall limit (`engine_stall_s`)
only starts once the reply holds a slot, so a crowd makes replies wait or be refused
with a retry hint, never fail as if the model had hung. One per daemon (`Service`),
shared by every session; one event loop, so no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

from personae.daemon.errors import PersonaeError


class ServerBusyError(PersonaeError):
    """Every reply slot is taken and the queue is full, or the wait ran out."""

    code = "server_busy"
    retryable = True

    def __init__(self, message: str, *, retry_after_ms: int) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms


class Admission:
    def __init__(
        self,
        *,
        slots: int,
        queue: int,
        wait_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if slots < 1 or queue < 0 or wait_s <= 0:
            raise ValueError("admission needs slots >= 1, queue >= 0 and wait_s > 0")
        self.slots = slots
        self.queue = queue
        self.wait_s = wait_s
        self._clock = clock
        self.busy = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        #: a moving average of how long a slot is held, for the retry hint
        self._held_s = 2.0

    @classmethod
    def from_settings(cls, settings) -> Admission:
        return cls(
            slots=settings.reply_slots,
            queue=settings.reply_queue,
            wait_s=settings.reply_queue_wait_s,
        )

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def retry_after_ms(self) -> int:
        """About when a slot frees for a newcomer: the queue ahead of it, served by
        every slot at the recent pace."""
        rounds = (self.waiting + 1) / self.slots
        return max(100, int(1000 * rounds * self._held_s))

    def _busy(self, why: str) -> ServerBusyError:
        hint = self.retry_after_ms()
        return ServerBusyError(f"{why}; retry in {hint / 1000:.1f} s", retry_after_ms=hint)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self._acquire()
        started = self._clock()
        try:
            yield
        finally:
            self._held_s = 0.8 * self._held_s + 0.2 * (self._clock() - started)
            self._release()

    async def _acquire(self) -> None:
        if self.busy < self.slots and not self._waiting:
            self.busy += 1
            return
        if self.waiting >= self.queue:
            raise self._busy(
                f"all {self.slots} reply slots are busy and {self.waiting} replies wait"
            )
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(fut)
        handed = lambda: fut.done() and not fut.cancelled()  # noqa: E731
        try:
            async with asyncio.timeout(self.wait_s):
                await fut  # _release hands the slot over (busy stays counted)
        except TimeoutError:
            if handed():
                return  # handed over just as the wait ran out: take it
            self._forget(fut)
            raise self._busy(f"no reply slot came free within {self.wait_s:g} s") from None
        except asyncio.CancelledError:
            if handed():
                self._release()  # the reply was cancelled as the slot arrived
            else:
                self._forget(fut)
            raise

    def _forget(self, fut: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._waiting.remove(fut)

    def _release(self) -> None:
        while self._waiting:
            fut = self._waiting.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot passes straight to the next in line
                return
        self.busy -= 1
