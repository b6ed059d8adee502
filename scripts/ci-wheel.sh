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
repo=$PWD

say() { printf '\033[36mci-wheel:\033[0m %s\n' "$*" >&2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/personae-wheel.XXXXXX")
# Made anew each run, but always at the same place: the router's ONNX export in the
# model cache is keyed by where the embedder package lies, so a new place each run
# would export it again and leave the old copy behind.
venv=${XDG_CACHE_HOME:-$HOME/.cache}/personae-ci/wheel-venv
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9  # one run at a time uses that place
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
say "installed $("$venv/bin/personae" --version) in $((SECONDS - start)) s"

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

if ! "$py" "$repo/scripts/ci_wheel_turn.py" "$port" "$server"; then
  say "the turn failed; the daemon's log:"
  cat "$work/serve.log" >&2
  exit 1
fi
say "passed in $((SECONDS - start)) s"
