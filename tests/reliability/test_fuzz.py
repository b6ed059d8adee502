"""Fuzzing the edge: the frame decoder and the session's event handling.

Bounded example counts here (PERSONAE_FUZZ_EXAMPLES raises them; bench/fuzz.py runs
the long version). Every frame either decodes or fails with FrameError; a session fed
any sequence of frames answers with events, never dies of an unhandled exception,
and leaves no task behind.
"""

from __future__ import annotations

import asyncio
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personae.daemon.testing import fuzzing
from personae.sdk.framing import FrameError, decode_client, decode_server

EXAMPLES = int(os.environ.get("PERSONAE_FUZZ_EXAMPLES", "0"))
fuzz = settings(
    max_examples=EXAMPLES or 400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=not EXAMPLES,  # the bounded run is the same every time
)
session_fuzz = settings(
    max_examples=EXAMPLES or 120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=not EXAMPLES,
)


def decode_never_raises_anything_else(frame: str | bytes) -> None:
    for decode in (decode_client, decode_server):
        try:
            decode(frame)
        except FrameError as exc:
            assert exc.code in {
                "malformed_frame",
                "missing_type",
                "unknown_event",
                "invalid_event",
                "number_out_of_range",
                "too_deep",
            }
            assert exc.message


@fuzz
@given(st.binary(max_size=256) | st.text(max_size=256))
def test_decoder_random_frames(frame: str | bytes) -> None:
    decode_never_raises_anything_else(frame)


@fuzz
@given(fuzzing.frames())
def test_decoder_structured_and_mutated_frames(frame: str | bytes) -> None:
    decode_never_raises_anything_else(frame)


@settings(max_examples=max(25, EXAMPLES // 50), deadline=None, derandomize=not EXAMPLES)
@given(st.integers(1, 20_000))
def test_decoder_deep_nesting(depth: int) -> None:
    decode_never_raises_anything_else("[" * depth + "]" * depth)
    decode_never_raises_anything_else('{"type": ' + "[" * depth + "]" * depth + "}")
    decode_never_raises_anything_else(b"\x91" * depth + b"\xc0")


# ---------------------------------------------------------------------- the session


@pytest.fixture(scope="module")
def fuzz_service(tmp_path_factory):
    svc = fuzzing.fuzz_service(tmp_path_factory.mktemp("fuzz"))
    yield svc
    svc.close()


@pytest.mark.timeout(7200 if EXAMPLES else 600)
@session_fuzz
@given(fuzzing.frame_lists, st.sampled_from([0.0, 0.0, 0.05, 0.3]))
def test_session_survives_any_frames(fuzz_service, frames, linger) -> None:
    events, code = asyncio.run(fuzzing.run_frames(fuzz_service, frames, linger))
    fuzzing.check_session(events, code)
