"""Admission and rate limits: sessions per key and in total, events per second per key.

    limits = Limits(max_sessions=256, per_key=16, rate_per_s=20, burst=60)
    with limits.session(principal) as guard:     # LimitExceededError: too_many_sessions
        guard.admit(event)                        # LimitExceededError: rate_limited

Rates are token buckets with an injectable clock, shared by every session of a key
(in local development mode each session has its own bucket: there is no key to share).
Audio frames are not counted here: their size is bounded by `max_frame_bytes` and
their amount per turn by `max_turn_audio_s`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from personae.daemon.auth import LOCAL, Principal
from personae.daemon.errors import LimitExceededError
from personae.sdk import protocol as p

Clock = Callable[[], float]

#: events that cost nothing beyond their frame: not rate limited
UNMETERED = frozenset({"input_audio_buffer.append"})


@dataclass(slots=True)
class TokenBucket:
    """`rate` tokens a second up to `burst`; `take()` is False when empty."""

    rate: float
    burst: float
    clock: Clock = time.monotonic
    tokens: float = field(init=False)
    stamp: float = field(init=False)

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.tokens = float(self.burst)
        self.stamp = self.clock()

    def take(self, n: float = 1.0) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False

    def wait_s(self, n: float = 1.0) -> float:
        """Seconds until `n` tokens will be there."""
        return max(0.0, (n - self.tokens) / self.rate)


class SessionGuard:
    """The limits one session answers to: its key's bucket and a strike count."""

    def __init__(self, principal: Principal, bucket: TokenBucket, *, strikes: int) -> None:
        self.principal = principal
        self._bucket = bucket
        self._max_strikes = strikes
        self.strikes = 0

    def admit(self, event: p.ClientEvent) -> None:
        """Raise LimitExceededError(`rate_limited`) when the key is over its rate."""
        if event.type in UNMETERED:
            return
        if self._bucket.take():
            self.strikes = 0
            return
        self.strikes += 1
        raise LimitExceededError(
            f"rate limit of {self._bucket.rate:g} events/s for key {self.principal.key_id} "
            f"exceeded; retry in {self._bucket.wait_s():.2f} s",
            code="rate_limited",
        )

    @property
    def exhausted(self) -> bool:
        """The client kept sending into a full limit: close the session (1008)."""
        return self.strikes >= self._max_strikes


class Limits:
    """Shared by every session of a daemon; thread-safe."""

    def __init__(
        self,
        *,
        max_sessions: int,
        per_key: int,
        rate_per_s: float,
        burst: int,
        strikes: int = 200,
        clock: Clock = time.monotonic,
    ) -> None:
        self.max_sessions = max_sessions
        self.per_key = per_key
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.strikes = strikes
        self.clock = clock
        self._lock = threading.Lock()
        self._open: dict[str, int] = {}
        self._buckets: dict[str, TokenBucket] = {}

    @classmethod
    def from_settings(cls, settings, *, clock: Clock = time.monotonic) -> Limits:
        return cls(
            max_sessions=settings.max_sessions,
            per_key=settings.max_sessions_per_key,
            rate_per_s=settings.rate_per_s,
            burst=settings.rate_burst,
            strikes=settings.rate_strikes,
            clock=clock,
        )

    @property
    def open_sessions(self) -> int:
        with self._lock:
            return sum(self._open.values())

    def sessions_of(self, key_id: str) -> int:
        with self._lock:
            return self._open.get(key_id, 0)

    @contextlib.contextmanager
    def session(self, principal: Principal) -> Iterator[SessionGuard]:
        """Hold a session slot for `principal`; raises `too_many_sessions` when full."""
        key = principal.key_id
        with self._lock:
            total = sum(self._open.values())
            if total >= self.max_sessions:
                raise LimitExceededError(
                    f"the daemon serves at most {self.max_sessions} sessions; try again later",
                    code="too_many_sessions",
                )
            mine = self._open.get(key, 0)
            if principal is not LOCAL and mine >= self.per_key:
                raise LimitExceededError(
                    f"key {key} may hold at most {self.per_key} sessions at once",
                    code="too_many_sessions",
                )
            self._open[key] = mine + 1
            if principal is LOCAL:
                bucket = self._new_bucket()
            else:
                bucket = self._buckets.get(key) or self._buckets.setdefault(key, self._new_bucket())
        try:
            yield SessionGuard(principal, bucket, strikes=self.strikes)
        finally:
            with self._lock:
                left = self._open[key] - 1
                if left:
                    self._open[key] = left
                else:
                    # the bucket stays: reconnecting must not refill it
                    del self._open[key]

    def _new_bucket(self) -> TokenBucket:
        return TokenBucket(self.rate_per_s, self.burst, self.clock)
