#!/usr/bin/env bash
# Set up attn-demos in ./.venv (idempotent): CPU torch, the package and its test tools.
#   bash scripts/setup.sh                 # package + dev extra
#   bash scripts/setup.sh --with-browser  # also Debian's Chromium for the browser tests (needs root or sudo)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch 2.13.0 pinned: its CPU wheel is what this project is tested with (an unpinned torch pulls a CUDA build).
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[dev]"

if [ "${1:-}" = "--with-browser" ] && [ ! -x /usr/bin/chromium ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
echo "attn-demos is set up in .venv"
