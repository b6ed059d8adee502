"""Fuzzing the session: hypothesis strategies for client frames (random, structured and
mutated), a session to feed them to, and the checks every run must pass.

Shared by the fuzz tests (bounded example counts) and `bench/fuzz.py` (long runs).
Needs hypothesis (the `dev` extra).
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import msgpack

try:
    from hypothesis import strategies as st
except ImportError as exc:
    raise ImportError("the fuzzing helpers need hypothesis: pip install 'personae[dev]'") from exc

from personae.daemon.service import Service
from personae.daemon.testing.fakes import FakeLLM, FakeSTT, silence, tone
from personae.daemon.testing.harness import fake_service, running
from personae.sdk import protocol as p

CHARACTERS = ["bram", "mara", "wren", "nobody", "", "../etc/passwd", "/abs/path", "BRAM"]
AUDIO = [tone(0.4), silence(0.3), tone(0.2) + silence(0.4), bytes(3), b""]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.integers(-(10**30), 10**30)  # past msgpack's range: goes out as JSON
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=16)
    | st.sampled_from(CHARACTERS)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


def _item(text: str, role: str = "user", character: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"role": role, "content": [{"type": "input_text", "text": text}]}
    if character is not None:
        item["character"] = character
    return {"type": "conversation.item.create", "item": item}


texts = st.text(max_size=60) | st.sampled_from(
    ["Hey Bram!", "<|im_start|>system", "*waves*", "x" * 2100, "Mara, where is the mill?"]
)
characters = st.sampled_from(CHARACTERS)

valid_events = st.one_of(
    st.builds(_item, texts),
    st.builds(_item, texts, st.just("assistant"), characters),
    st.builds(_item, texts, st.just("system")),
    st.builds(lambda c: {"type": "response.create", "response": {"character": c}}, characters),
    st.just({"type": "response.create"}),
    st.builds(lambda i: {"type": "response.create", "response": {"instructions": i}}, texts),
    st.just({"type": "response.cancel"}),
    st.builds(lambda a: {"type": "input_audio_buffer.append", "audio": a}, st.sampled_from(AUDIO)),
    st.builds(lambda a: {"type": "input_audio_buffer.append", "audio": a}, st.binary(max_size=64)),
    st.just({"type": "input_audio_buffer.commit"}),
    st.just({"type": "input_audio_buffer.clear"}),
    st.builds(
        lambda td, rate, chars: {
            "type": "session.update",
            "session": {"turn_detection": td, "input_sample_rate": rate, "characters": chars},
        },
        st.sampled_from(
            [None, {"type": "server_vad"}, {"type": "server_vad", "create_response": False}]
        ),
        st.sampled_from([8000, 16000, 22050, 44100, 48000]),
        st.sampled_from([None, ["bram"], ["mara", "wren"], ["nobody"]]),
    ),
    st.builds(
        lambda n, d, c: {
            "type": "game.event",
            "name": n,
            "description": d,
            "characters": c,
            "data": {"trust": 0.5},
        },
        st.text(min_size=1, max_size=20),
        texts,
        st.sampled_from([None, ["bram"], ["nobody"]]),
    ),
    st.builds(
        lambda c, s: {"type": "npc.feedback", "character": c, "score": s},
        characters,
        st.floats(-1, 1),
    ),
    st.builds(
        lambda c, t, n: {"type": "npc.converse", "characters": c, "topic": t, "lines": n},
        st.sampled_from([["bram", "mara"], ["bram"], ["mara", "wren", "bram"], ["nobody", "bram"]]),
        texts,
        st.sampled_from([0, 1, 2, 100]),
    ),
    st.builds(
        lambda i, ms: {"type": "conversation.item.truncate", "item_id": i, "audio_end_ms": ms},
        st.text(max_size=12),
        st.integers(0, 10_000),
    ),
    st.builds(
        lambda c, t, params: {
            "type": "game.trigger",
            "character": c,
            "trigger": t,
            "parameters": params,
        },
        characters,
        st.sampled_from(["customer_enters", "forge_fire", "book_found", "letter_delivered", "x"]),
        st.sampled_from(
            [{}, {"name": "Ayla"}, {"title": "Ashes"}, {"destination": "mill"}, {"name": 3}]
        ),
    ),
    st.builds(
        lambda i, s, r: {"type": "game.action_result", "action_id": i, "status": s, "reason": r},
        st.text(min_size=1, max_size=12),
        st.sampled_from(["done", "refused", "failed", "maybe"]),
        texts,
    ),
)


@st.composite
def mutated_events(draw) -> dict[str, Any]:
    """A valid-looking event with a field replaced, removed or added."""
    event = dict(draw(valid_events))
    op = draw(st.sampled_from(["replace", "remove", "add", "type", "nest", "none"]))
    keys = sorted(event)
    if op == "replace":
        event[draw(st.sampled_from(keys))] = draw(json_values)
    elif op == "remove":
        event.pop(draw(st.sampled_from(keys)))
    elif op == "add":
        event[draw(st.text(max_size=10))] = draw(json_values)
    elif op == "type":
        event["type"] = draw(st.sampled_from(sorted(p.CLIENT_EVENT_TYPES | p.SERVER_EVENT_TYPES)))
    elif op == "nest":
        for key, value in list(event.items()):
            if isinstance(value, dict) and value:
                value = dict(value)
                value[draw(st.sampled_from(sorted(value)))] = draw(json_values)
                event[key] = value
    return event


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def encode(event: dict[str, Any], framing: str) -> str | bytes:
    if framing == "json":
        return json.dumps(_jsonable(event))
    return msgpack.packb(event, use_bin_type=True)


@st.composite
def byte_mutations(draw, frame: str | bytes) -> str | bytes:
    """Flip, cut, duplicate or splice bytes of a frame (text stays text)."""
    data = bytearray(frame.encode("utf-8", "surrogatepass") if isinstance(frame, str) else frame)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "dup", "insert"]))
        if not data:
            data += draw(st.binary(min_size=1, max_size=8))
            continue
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[i:]
        elif op == "dup":
            data[i:i] = data[i : i + draw(st.integers(1, 16))]
        else:
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
    if isinstance(frame, str):
        return bytes(data).decode("utf-8", "replace")
    return bytes(data)


#: JSON number texts and nestings no encoder writes from Python values
hostile_tokens = st.sampled_from(
    [
        *("1" * 5000, "-" + "9" * 4301, "1e400", "-1e400", "1" + "0" * 30, "9007199254740993"),
        *("NaN", "Infinity", "-Infinity", "1.5e308", "2e-400"),
    ]
) | st.integers(20, 3000).map(lambda n: "[" * n + "1" + "]" * n)
_HOLE = "\ue000hostile"


@st.composite
def hostile_frames(draw) -> str:
    """A valid event's JSON with one value swapped for a huge number or a deep nesting."""
    event = dict(draw(valid_events))
    target = event
    nested = [v for v in event.values() if isinstance(v, dict) and v]
    if nested and draw(st.booleans()):
        target = dict(draw(st.sampled_from(nested)))
        event[next(k for k, v in event.items() if v == target)] = target
    target[draw(st.sampled_from([*sorted(target), "extra"]))] = _HOLE
    return json.dumps(_jsonable(event)).replace(json.dumps(_HOLE), draw(hostile_tokens), 1)


@st.composite
def frames(draw) -> str | bytes:
    """One client frame: valid, field-mutated, byte-mutated, hostile or random."""
    kinds = ["valid", "valid", "mutated", "mutated", "bytes", "hostile", "random"]
    kind = draw(st.sampled_from(kinds))
    framing = draw(st.sampled_from(["json", "msgpack"]))
    if kind == "random":
        return draw(st.binary(max_size=64) if framing == "msgpack" else st.text(max_size=64))
    if kind == "hostile":
        return draw(hostile_frames())
    event = draw(valid_events if kind == "valid" else mutated_events())
    try:
        frame = encode(event, framing)
    except (OverflowError, ValueError, TypeError):  # e.g. 2**64 in msgpack's int range
        frame = encode(event, "json")
    if kind == "bytes":
        frame = draw(byte_mutations(frame))
    return frame


class FrameList(list):
    """A list of frames whose repr stays short (hypothesis prints failing examples)."""

    def __repr__(self) -> str:
        return "[" + ", ".join(repr(f)[:120] for f in self) + "]"


frame_lists = st.lists(frames(), max_size=25).map(FrameList)


# ---------------------------------------------------------------------- the session


def fuzz_service(state_dir: Path) -> Service:
    """Replies with stage directions, a transcript with a chat-template token, and short
    stage timeouts: the paths fuzzed frames should reach."""
    return fake_service(
        state_dir=state_dir,
        llm=FakeLLM(reply=lambda req: "*nods* Aye. (laughs) Come back tomorrow."),
        stt=FakeSTT(text_for=lambda audio: "Hey Mara, <|im_start|>system"),
        engine_stall_s=2.0,
        reply_timeout_s=5.0,
    )


async def run_frames(
    svc: Service, frames: list[str | bytes], linger: float
) -> tuple[list[p.ServerEvent], int | None]:
    """Feed `frames` to a fresh session, wait `linger` s, leave; (events, close code or
    None). Fails if a task is left behind."""
    async with running(svc, close_timeout=10) as h:
        for frame in frames:
            h.send(frame)
        await asyncio.sleep(linger)
    return h.events, h.closed.code if h.closed else None


def check_session(events: list[p.ServerEvent], code: int | None) -> None:
    """What every fuzzed session must show; raises AssertionError otherwise."""
    # it only ever closes by the client leaving (1000) or a limit (1008, 1009)
    _check(code in (None, 1000, 1008, 1009), f"closed with {code}")
    _check(bool(events) and events[0].type == "session.created", "no session.created first")
    for e in events:
        if e.type == "error":
            # no unhandled exception surfaced as a generic server error
            _check(
                e.error.type == "invalid_request_error"
                or e.error.code in {"reply_timeout", "content_blocked"},
                repr(e.error),
            )
    # every response that started ended exactly once
    created = [e.response.id for e in events if e.type == "response.created"]
    done = [e.response.id for e in events if e.type == "response.done"]
    _check(len(done) == len(set(done)) and set(done) <= set(created), f"{created} / {done}")
    # every exchange between characters that started ended at most once (a client that
    # leaves mid-exchange hears no end)
    began = [e.exchange_id for e in events if e.type == "npc.exchange.started"]
    ended = [e.exchange_id for e in events if e.type == "npc.exchange.done"]
    _check(len(ended) == len(set(ended)) and set(ended) <= set(began), f"{began} / {ended}")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise AssertionError(message)
