#!/usr/bin/env bash
# System packages and Python tools for the client tests (tests/clients/), on Debian.
#
#   sudo scripts/ci-clients.sh
#
# mono-mcs + mono-runtime: compile and run the Unity package's C# core outside Unity.
# chromium + chromium-driver: the browser playground test (Playwright drives the Debian
# chromium binary; `playwright install` is never needed).
# godot3-server: headless Godot 3, runs the Godot addon's play-out clock (playout.gd, in
# the GDScript common to Godot 3 and 4; Debian has no Godot 4).
# gdtoolkit (gdparse/gdlint) and playwright go into the project's .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${PERSONAE_VENV:-.venv}
need=()
command -v mcs >/dev/null || need+=(mono-mcs)
command -v mono >/dev/null || need+=(mono-runtime)
[[ -f /usr/lib/mono/4.5/System.dll ]] || need+=(libmono-system4.0-cil)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v godot3-server >/dev/null || need+=(godot3-server)
if ((${#need[@]})); then
  if [[ $(id -u) != 0 ]]; then
    echo "ci-clients: please run as root, or: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

if [[ -x "$VENV/bin/pip" ]]; then
  "$VENV/bin/pip" install -q -c constraints.txt gdtoolkit playwright
else
  echo "ci-clients: no $VENV yet; run scripts/setup.sh --dev first" >&2
  exit 1
fi
echo "ci-clients: ready (mcs $(mcs --version | awk '{print $NF}'), $(chromium --version 2>/dev/null | head -1))"
