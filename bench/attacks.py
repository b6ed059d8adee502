"""Attack figures on a real daemon (fake engines, keys required, 127.0.0.1 only):

* bodies: four anonymous 191 MB POSTs to /v1/chat/completions at once (two announced by
  Content-Length, two chunked), and the daemon's resident memory before and after;
* idle sockets: 1,024 silent, slowloris and half-upgraded sockets from 127.0.0.2, then
  another client (127.0.0.1) completes a session; how many attack sockets the daemon
  closed, and when.

    personae bench attacks [--sockets 1024] [--out bench/results/attacks.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import tempfile
import threading
import time
from pathlib import Path

import httpx
from websockets.sync.client import connect

from personae.daemon.auth import KeyStore
from personae.daemon.testing.launcher import Daemon, FakeEngines
from personae.daemon.testing.wire import receive, say, send, until

BODY = 191 * 1024 * 1024


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def post_body(url: str, chunked: bool, out: list[int]) -> None:
    def chunks():
        block = b"[" * (1 << 20)
        for _ in range(BODY >> 20):
            yield block

    try:
        if chunked:
            r = httpx.post(url, content=chunks(), timeout=60)
        else:
            r = httpx.post(
                url,
                content=chunks(),
                headers={"Content-Length": str(BODY), "Content-Type": "application/json"},
                timeout=60,
            )
        out.append(r.status_code)
    except httpx.HTTPError:
        out.append(-1)  # the daemon closed the connection mid-upload: nothing held


def bodies(d: Daemon) -> dict:
    assert d.process is not None
    before = rss_mb(d.process.pid)
    peak = before
    statuses: list[int] = []
    url = f"{d.url}/v1/chat/completions"
    threads = [
        threading.Thread(target=post_body, args=(url, i % 2 == 1, statuses)) for i in range(4)
    ]
    started = time.monotonic()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        peak = max(peak, rss_mb(d.process.pid))
        time.sleep(0.05)
    return {
        "bodies": 4,
        "body_mb": BODY / 2**20,
        "statuses": sorted(statuses),
        "seconds": round(time.monotonic() - started, 2),
        "rss_before_mb": round(before, 1),
        "rss_peak_mb": round(peak, 1),
        "rss_rise_mb": round(peak - before, 1),
    }


def idle_sockets(d: Daemon, key: str, n: int) -> dict:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 256)), hard))
    heads = [b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-a: ", b"GET /v1/realtime HTTP/1.1\r\n"]
    attack = []
    started = time.monotonic()
    for i in range(n):
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.connect(("127.0.0.1", d.port))
        if heads[i % 3]:
            s.sendall(heads[i % 3])
        attack.append(s)
    opened_s = time.monotonic() - started
    t0 = time.monotonic()
    with connect(d.ws, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        receive(ws)
        send(ws, say("Hello Bram."))
        send(ws, {"type": "response.create", "response": {"character": "bram"}})
        status = until(ws, "response.done", timeout=30)["response"]["status"]
    session_s = time.monotonic() - t0
    closed_at: list[float] = []
    for s in attack:
        s.settimeout(max(0.01, 30 - (time.monotonic() - started)))
        try:
            while s.recv(4096):
                pass
            closed_at.append(time.monotonic() - started)
        except ConnectionResetError:
            closed_at.append(time.monotonic() - started)
        except TimeoutError:
            pass  # still open after 30 s
        finally:
            s.close()
    return {
        "sockets": n,
        "opened_in_s": round(opened_s, 2),
        "other_client_session": status,
        "other_client_session_s": round(session_s, 2),
        "closed_by_daemon": len(closed_at),
        "all_closed_after_s": round(max(closed_at), 2) if closed_at else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sockets", type=int, default=1024)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "attacks.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="personae-attacks-") as tmp:
        key, _ = KeyStore(Path(tmp) / "keys.json").create("game-server")
        with Daemon(state_dir=Path(tmp), fakes=FakeEngines(voices=False)) as d:
            report = {
                "bodies": bodies(d),
                "idle_sockets": idle_sockets(d, key, args.sockets),
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
            }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
