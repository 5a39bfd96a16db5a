#!/usr/bin/env bash
# Set up halle-bench on a fresh machine, then run one job.
#
#   bash scripts/setup.sh demo [halle-bench run args...]   # set up, run the embedded demo
#   bash scripts/setup.sh test [pytest args...]            # set up, run the test suite
#   bash scripts/setup.sh setup                            # set up only
#
# Idempotent: each step checks whether it is already done. Everything lives in
# ./.venv (override with HALLE_VENV). Nothing here needs a GPU.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HALLE_VENV:-$ROOT/.venv}"
PY_BOOT="${PYTHON:-python3}"
MODE="${1:-setup}"
shift || true

log() { printf '[setup] %s\n' "$*" >&2; }

# --- system packages: espeak-ng is the demo's speech engine and phonemizer's backend
need_apt=()
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
command -v sox >/dev/null 2>&1 || need_apt+=(sox)
if ((${#need_apt[@]})); then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    log "installing ${need_apt[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    log "missing system packages: ${need_apt[*]}"
    log "install them first, e.g.: sudo apt-get install ${need_apt[*]}"
    exit 2
  fi
fi

# --- Chromium (optional): the real-browser test of report.html renders the page
# headless (tests/halle_bench/test_html.py). Installed like espeak-ng when we are root
# with apt, so CI runs that test; elsewhere (or if apt has no usable package, e.g. a
# snap-only Ubuntu) that one test skips. HALLE_NO_CHROMIUM=1 opts out.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
    && ! command -v google-chrome >/dev/null 2>&1 && [ "${HALLE_NO_CHROMIUM:-0}" != "1" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    log "installing chromium with apt-get (for the HTML report's browser test)"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; } >/dev/null 2>&1 \
      || log "could not install chromium; the browser test will skip"
  else
    log "optional: no Chromium (the HTML report's browser test will skip); e.g. sudo apt-get install chromium"
  fi
fi

# --- virtual environment
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PY_BOOT" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade "pip>=24"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install -q --disable-pip-version-check)

# --- torch: a bare `torch` requirement resolves to a multi-GB CUDA build here, so
# install the CPU build first when no torch is present. A GPU user who already has
# torch in this venv keeps it (pyproject only asks for torch>=2.3).
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  log "installing CPU torch"
  "${PIP[@]}" "torch==2.13.0" || "${PIP[@]}" --index-url https://download.pytorch.org/whl/cpu torch
fi

stamp="$VENV/.halle-reqs.sha256"
want="$(cat "$ROOT/requirements.txt" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing python packages (requirements.txt)"
  "${PIP[@]}" -r "$ROOT/requirements.txt"
  # openai-whisper pulls triton (~1 GB, GPU only) on Linux x86_64; its real
  # dependencies are in requirements.txt, so install it without them.
  "${PIP[@]}" --no-deps "openai-whisper==20250625"
  # The project itself, editable, without re-resolving (would pull triton again).
  "${PIP[@]}" --no-deps -e "$ROOT"
  echo "$want" >"$stamp"
fi

# --- torchaudio: speechbrain and encodec import it at top level. PyPI's torchaudio
# here is a CUDA build whose native libs fail to load next to CPU torch
# (OSError: libc10_cuda.so). Without its .so files it imports as pure Python, and
# everything we use from it (resampling, transforms, fbank) works; we never call
# torchaudio.load/save (soundfile does I/O). Only done when the import fails.
if ! "$PY" -c "import torchaudio" >/dev/null 2>&1; then
  ta_dir="$("$PY" -c "import importlib.util,os;print(os.path.dirname(importlib.util.find_spec('torchaudio').origin))")"
  log "torchaudio native libs do not load with this torch; removing $ta_dir/lib/*.so (pure-Python mode)"
  rm -f "$ta_dir"/lib/*.so
  "$PY" -c "import torchaudio" || { log "torchaudio still fails to import"; exit 1; }
fi

export PATH="$VENV/bin:$PATH"
case "$MODE" in
  setup) log "ready: source $VENV/bin/activate" ;;
  demo) exec "$VENV/bin/halle-bench" run "$@" ;;
  # The whole suite, slow tests included (about 4 minutes on 2 cores); plain `pytest`
  # runs the fast subset (pyproject addopts). A later -m in "$@" overrides this one.
  test) cd "$ROOT" && exec "$VENV/bin/python" -m pytest -q -m "slow or not slow" "$@" ;;
  *) log "unknown mode '$MODE' (use demo, test or setup)"; exit 2 ;;
esac
