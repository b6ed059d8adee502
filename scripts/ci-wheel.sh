#!/usr/bin/env bash
# CI: install the built wheel (not this checkout in editable mode) into a fresh
# virtual environment, start `personae serve` from it and hold one text turn.
#
# An editable install hides what the wheel lacks: a package or data file left out, a
# dependency that only the dev extras bring. This installs the wheel the way
# scripts/setup.sh installs the checkout (same extras, torch pinned by constraints.txt),
# from the package index pip is configured with, and serves the real default engines
# with the models setup.sh prepared in the cache (PERSONAE_CACHE_DIR).
#
#   scripts/ci-wheel.sh            (after scripts/setup.sh --dev, as `make test` runs it)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[36mci-wheel:\033[0m %s\n' "$*" >&2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/personae-wheel.XXXXXX")
# Made anew each run, but always at the same place: the router's ONNX export in the
# model cache is keyed by where the embedder package lies, so a new place each run
# would export it again and leave the old copy behind.
venv=${XDG_CACHE_HOME:-$HOME/.cache}/personae-ci/wheel-venv
server=
cleanup() {
  if [[ -n "$server" ]]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work" "$venv"
}
trap cleanup EXIT

start=$SECONDS
wheel=$(.venv/bin/python scripts/build_wheel.py "$work/dist")
say "built $(basename "$wheel"); installing it into a fresh environment, $venv"
rm -rf "$venv"
if ! PERSONAE_VENV="$venv" scripts/setup.sh --wheel "$wheel" >"$work/setup.log" 2>&1; then
  say "the install failed:"
  grep -v "^WARNING: Location" "$work/setup.log" >&2
  exit 1
fi
grep -a "setup:" "$work/setup.log" >&2 || true
say "installed in $((SECONDS - start)) s"

py="$venv/bin/python"
port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# its own database, adapter store and (empty) keys file; the models' cache is shared
cd "$work"
PERSONAE_HOST=127.0.0.1 PERSONAE_PORT=$port \
  PERSONAE_DATABASE_URL="sqlite:///$work/personae.db" \
  PERSONAE_ADAPTERS_DIR="$work/adapters" PERSONAE_KEYS_FILE="$work/keys.json" \
  HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
  "$venv/bin/personae" serve >"$work/serve.log" 2>&1 &
server=$!
say "personae serve (pid $server) on 127.0.0.1:$port"

if ! "$py" - "$port" "$server" <<'EOF'; then
"""Wait for the daemon, then say one line with the wheel's SDK and check the reply."""

import asyncio
import json
import os
import sys
import time
import urllib.request

from pathlib import Path

import personae.daemon
import personae.sdk
from personae.sdk.client import connect

port, server = int(sys.argv[1]), int(sys.argv[2])
for package in (personae.sdk, personae.daemon):
    where = Path(package.__path__[0])
    assert where.is_relative_to(sys.prefix), f"{package.__name__} imported from {where}"

health = None
deadline = time.monotonic() + 600  # model loading and warm-up on two busy cores
while time.monotonic() < deadline:
    os.kill(server, 0)  # raises once `personae serve` has died
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            health = json.load(r)
        if health["status"] == "ok":
            break
    except OSError:
        pass
    time.sleep(1)
assert health and health["status"] == "ok", f"daemon not ready: {health}"
with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/characters", timeout=5) as r:
    body = json.load(r)
cast = {c["id"] for c in body["characters"]}


async def turn():
    async with await connect(f"ws://127.0.0.1:{port}/v1/realtime") as session:
        return await session.say("Hello! Who are you, and what do you do here?")


reply = asyncio.run(turn())
assert reply.status == "completed", (reply.status, reply.response.status_reason)
assert reply.character in cast, (reply.character, cast)
assert reply.text.strip(), "the reply has no text"
seconds = len(reply.audio) / 2 / reply.sample_rate
assert seconds > 0.2, f"the reply has {seconds:.2f} s of audio"
print(f"ci-wheel: {reply.character} ({', '.join(sorted(cast))}): {reply.text!r}, {seconds:.1f} s of audio")
EOF
  say "the turn failed; the daemon's log:"
  cat "$work/serve.log" >&2
  exit 1
fi
say "passed in $((SECONDS - start)) s"
