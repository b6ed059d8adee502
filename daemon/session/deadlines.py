"""Deadlines for engine stages: a stage that stops producing fails as a retryable
EngineError; time spent waiting for a free thread (a queue, under load) never counts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from personae.daemon.errors import EngineError
from personae.daemon.session.conversation import Run

T = TypeVar("T")


async def within(items: AsyncIterator[T], seconds: float, engine: str) -> AsyncIterator[T]:
    """`items`, failing with a retryable EngineError when one takes longer than `seconds`."""
    while True:
        try:
            async with asyncio.timeout(seconds):
                item = await anext(items)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise EngineError(
                f"no output for {seconds:g} s", engine=engine, retryable=True
            ) from None
        yield item


async def in_time(call: Awaitable[T], seconds: float, engine: str) -> T:
    # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns the result when the
    # call finishes just as the caller is cancelled, swallowing the cancellation (a
    # barge-in or a blocked reply then left its TTS task waiting for sentences forever)
    try:
        async with asyncio.timeout(seconds):
            return await call
    except TimeoutError:
        raise EngineError(f"no result for {seconds:g} s", engine=engine, retryable=True) from None


async def in_time_once_started(
    run: Run, stage: str, fn: Callable[..., T], args: tuple[Any, ...], seconds: float
) -> T:
    """`fn(*args)` on `stage`'s threads within `seconds` of a thread taking it up: waiting
    for a free thread (a queue, under load) is not an engine stall."""
    loop = asyncio.get_running_loop()
    began: asyncio.Future[None] = loop.create_future()

    def mark() -> None:
        if not began.done():
            began.set_result(None)

    def call() -> T:
        loop.call_soon_threadsafe(mark)
        return fn(*args)

    task = asyncio.ensure_future(run(stage, call))
    try:
        await asyncio.wait({task, began}, return_when=asyncio.FIRST_COMPLETED)
        return await in_time(task, seconds, stage)
    finally:
        began.cancel()
        if not task.done():
            task.cancel()


def first_leaf(exc: BaseException | None) -> BaseException | None:
    """The real error inside TaskGroup's exception groups."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
