"""Connections on a real daemon with keys required: idle and half-sent sockets are closed,
one address cannot hold the daemon's sockets, bodies are bounded before the key check."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from personae.daemon.auth import KeyStore
from personae.daemon.testing.launcher import Daemon, FakeEngines
from personae.daemon.testing.wire import receive, say, send, until

ATTACKER = "127.0.0.2"  # another loopback address: the per-address limit tells them apart
LIMITS = {
    "header_timeout_s": 1.0,
    "max_connections_per_address": 16,
    "idle_timeout_s": 4.0,
    "max_body_bytes": 1 << 20,
}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory) -> Iterator[tuple[Daemon, str]]:
    state = tmp_path_factory.mktemp("connections")
    key, _ = KeyStore(state / "keys.json").create("game-server")
    with Daemon(
        state_dir=state, fakes=FakeEngines(voices=False, tts_ms_per_char=1), settings=LIMITS
    ) as d:
        yield d, key


def attacker_socket(port: int, first: bytes = b"") -> socket.socket:
    s = socket.socket()
    s.bind((ATTACKER, 0))
    s.connect(("127.0.0.1", port))
    if first:
        s.sendall(first)
    return s


def closed_by_server(s: socket.socket, within: float) -> bool:
    s.settimeout(within)
    try:
        while s.recv(4096):
            pass  # a 4xx the server sent before closing
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def complete_session(d: Daemon, key: str) -> None:
    with connect(d.ws, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        assert receive(ws)["type"] == "session.created"
        send(ws, say("Hello Bram."))
        send(ws, {"type": "response.create", "response": {"character": "bram"}})
        assert until(ws, "response.done")["response"]["status"] == "completed"


def test_idle_and_half_sent_sockets_do_not_starve_other_clients(keyed) -> None:
    d, key = keyed
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    heads = [
        b"",  # silent
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ",  # slowloris
        b"GET /v1/realtime HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n",  # half upgrade
    ]
    attack = [attacker_socket(d.port, heads[i % 3]) for i in range(300)]
    try:
        assert httpx.get(f"{d.url}/healthz", timeout=5).status_code == 200
        complete_session(d, key)
        # the address's extra sockets are closed as accepted, the rest at the header timeout
        assert all(closed_by_server(s, 3.0) for s in attack)
    finally:
        for s in attack:
            s.close()


def test_an_idle_session_is_closed(keyed) -> None:
    d, key = keyed
    with connect(d.ws, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        assert receive(ws)["type"] == "session.created"
        with pytest.raises(ConnectionClosed) as closed:
            receive(ws, timeout=10)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1000, "idle")


def test_a_huge_body_is_refused_from_its_length_before_the_key_check(keyed) -> None:
    d, _ = keyed
    s = attacker_socket(d.port)
    with s:
        head = (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\nContent-Length: 200000000\r\n\r\n"
        )
        s.sendall(head.encode())  # and never the body
        s.settimeout(5)
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
        answer = answer.decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert "body_too_large" in answer


def test_a_chunked_body_is_cut_at_the_limit(keyed) -> None:
    d, _ = keyed

    def chunks() -> Iterator[bytes]:
        for _ in range(64):  # 4 MiB in all, never announced
            yield b"x" * 65536

    r = httpx.post(f"{d.url}/v1/chat/completions", content=chunks(), timeout=10)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "body_too_large"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('{"model": "bram", "messages": ' + "[" * 100_000 + "]" * 100_000 + "}", "too_deep"),
        ('{"model": "bram", "seed": ' + "9" * 5000 + "}", "number_out_of_range"),
        ('{"model": "bram", "temperature": 1e400}', "number_out_of_range"),
    ],
)
def test_bodies_past_the_bounds_get_a_precise_400(keyed, body: str, code: str) -> None:
    d, key = keyed
    for headers in ({}, {"Authorization": f"Bearer {key}"}):
        r = httpx.post(
            f"{d.url}/v1/chat/completions",
            content=body,
            headers={"Content-Type": "application/json", **headers},
            timeout=10,
        )
        assert r.status_code == 400, r.text[:200]
        assert r.json()["error"]["code"] == code
    assert httpx.get(f"{d.url}/healthz").status_code == 200


def masked_text_frame(payload: bytes) -> bytes:
    """One client-to-server WebSocket text frame (clients must mask, RFC 6455 5.3)."""
    mask = os.urandom(4)
    head = bytes([0x81])
    n = len(payload)
    head += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def test_a_client_that_never_reads_is_closed_within_the_send_timeout(tmp_path) -> None:
    """It asks for replies and reads nothing: kernel buffers would take its paced audio
    for minutes, but it answers no ping, so `send_timeout_s` bounds it (not 45 s)."""
    key, _ = KeyStore(tmp_path / "keys.json").create("game-server")
    # pings would come every 300 s by ws_ping_s alone: the send timeout must rule
    settings = {"send_timeout_s": 2.0, "ws_ping_s": 300.0, "idle_timeout_s": 600.0}
    with Daemon(state_dir=tmp_path, fakes=FakeEngines(voices=False), settings=settings) as d:
        s = socket.create_connection(("127.0.0.1", d.port))
        with s:
            s.sendall(
                b"GET /v1/realtime HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Authorization: Bearer " + key.encode() + b"\r\n\r\n"
            )
            opened = until_true(lambda: sessions(d) == 1, within=10)
            assert opened, "the session never opened"
            # keeps talking (so it is not idle) and never reads a byte
            turn = [say("Tell me everything you know."), {"type": "response.create"}]
            frames = [masked_text_frame(json.dumps(e).encode()) for e in turn]
            closed = False
            for _ in range(60):  # at most ~30 s: ws_ping_s alone would take 600 s
                with contextlib.suppress(OSError):
                    s.sendall(b"".join(frames))
                if sessions(d) == 0:
                    closed = True
                    break
                time.sleep(0.5)
            assert closed, "a client that never reads was not closed"
        # and the daemon serves the next client
        complete_session(d, key)


def sessions(d: Daemon) -> int:
    return httpx.get(f"{d.url}/healthz", timeout=5).json()["sessions"]


def until_true(check, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False
