#!/usr/bin/env bash
# One GPU, under 8 minutes: scoring throughput, VALL-E vs HALL-E generation RTF with the
# AR/NAR split, and AR training throughput, written to results/gpu/<card>/.
#
#   bash scripts/gpu-check.sh                      # cuda, full sizes (paper models, 10/60/180 s)
#   bash scripts/gpu-check.sh --device cuda:1
#   bash scripts/gpu-check.sh --device cpu --quick # dry run of the whole path on CPU (tiny sizes)
#   bash scripts/gpu-check.sh --out /tmp/gpu       # another results folder
#
# Each stage runs under its own time limit (scoring 90 s, RTF 300 s, training 60 s in
# full; the sum, plus start-up, stays under 8 minutes). A stage cut short keeps the rows
# it finished (bench_halle_vs_valle.py writes its JSON after every row) and is marked
# "timed out" in summary.md; the script then goes on. Exit status: 0 when every stage
# finished, 1 when one failed or timed out, 2 for bad arguments or no CUDA.
#
# Files: env.txt (card, driver, torch / CUDA / onnxruntime providers / CTranslate2
# devices), scoring.{txt,json} (benchmarks/bench_scoring.py: audio seconds per second
# per scorer), rtf.{txt,json} (benchmarks/bench_halle_vs_valle.py), train.{txt,json}
# (benchmarks/bench_train_step.py), summary.md (the figures in one table each).
set -uo pipefail

DEVICE=cuda
QUICK=0
OUT_ROOT=results/gpu
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="${2:?--device needs a value}"; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --out) OUT_ROOT="${2:?--out needs a folder}"; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python

CARD=$("$PY" - "$DEVICE" <<'EOF'
import sys, torch
dev = sys.argv[1]
if dev.startswith("cuda"):
    if not torch.cuda.is_available():
        sys.exit("no CUDA device visible to torch")
    print(torch.cuda.get_device_name(torch.device(dev)))
else:
    print("cpu")
EOF
) || { echo "gpu-check: --device $DEVICE: CUDA is not available (torch.cuda.is_available() is False)" >&2; exit 2; }
SLUG=$(printf '%s' "$CARD" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9.\n' '-' | sed 's/--*/-/g; s/^-//; s/-$//')
[ "$QUICK" = 1 ] && SLUG="$SLUG-quick"
OUT="$OUT_ROOT/$SLUG"
mkdir -p "$OUT"
echo "gpu-check: $CARD ($DEVICE), results in $OUT"

if [ "$QUICK" = 1 ]; then
  SCORING=(--audio synth --n 2 --seconds 8 --scorers wer,quality,longform)
  RTF=(--size tiny --seconds 2 4)
  TRAIN=(--size tiny --seconds 4 --batch 2 --steps 2)
  T_SCORING=300; T_RTF=300; T_TRAIN=200
else
  SCORING=(--audio synth --n 8 --seconds 60 --scorers wer,sim,quality,longform,intrusive)
  RTF=(--size paper --seconds 10 60 180)
  TRAIN=(--size paper --seconds 20 --batch 8 --steps 10)
  T_SCORING=90; T_RTF=300; T_TRAIN=60
fi

{
  echo "card: $CARD"
  echo "device: $DEVICE"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  "$PY" - <<'EOF'
import torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, devices {torch.cuda.device_count()}")
try:
    import onnxruntime as ort
    print(f"onnxruntime {ort.__version__}, providers {ort.get_available_providers()}")
except ImportError as e:
    print(f"onnxruntime: {e}")
try:
    import ctranslate2
    print(f"ctranslate2 {ctranslate2.__version__}, CUDA devices {ctranslate2.get_cuda_device_count()}")
except ImportError as e:
    print(f"ctranslate2: {e}")
EOF
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

STATUS=0
declare -A STAGE_STATE
stage() {  # stage NAME LIMIT_S CMD...
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit} s): $*"
  local t0=$SECONDS rc
  timeout --signal=INT --kill-after=10 "$limit" "$@" 2>&1 | tee "$OUT/$name.txt"
  rc=${PIPESTATUS[0]}
  case $rc in
    0) STAGE_STATE[$name]="ok in $((SECONDS - t0)) s" ;;
    124|137) STAGE_STATE[$name]="timed out after ${limit} s (rows so far kept)"; STATUS=1 ;;
    *) STAGE_STATE[$name]="failed (exit $rc)"; STATUS=1 ;;
  esac
  echo "== $name: ${STAGE_STATE[$name]}"
}

if command -v espeak-ng >/dev/null; then
  stage scoring "$T_SCORING" "$PY" benchmarks/bench_scoring.py --device "$DEVICE" --mode batched "${SCORING[@]}" --json "$OUT/scoring.json"
else  # the scoring audio is spoken by espeak-ng
  STAGE_STATE[scoring]="skipped: espeak-ng is not installed (apt-get install espeak-ng)"; STATUS=1
  echo "== scoring: ${STAGE_STATE[scoring]}"
fi
stage rtf "$T_RTF" "$PY" benchmarks/bench_halle_vs_valle.py --device "$DEVICE" "${RTF[@]}" --json "$OUT/rtf.json"
stage train "$T_TRAIN" "$PY" benchmarks/bench_train_step.py --device "$DEVICE" "${TRAIN[@]}" --json "$OUT/train.json"

"$PY" - "$OUT" "$CARD" "${STAGE_STATE[scoring]}" "${STAGE_STATE[rtf]}" "${STAGE_STATE[train]}" <<'EOF' > "$OUT/summary.md"
import json, sys
from pathlib import Path

out, card, st_scoring, st_rtf, st_train = Path(sys.argv[1]), *sys.argv[2:]
def load(name):
    p = out / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None

print(f"# gpu-check: {card}\n")
print((out / "env.txt").read_text().strip().replace("\n", "  \n"), "\n")
s = load("scoring")
print(f"## Scoring throughput ({st_scoring})\n")
if s:
    print(f"{s['clips']} clips, {s['audio_seconds']} s of audio ({s['audio']}), device {s['device']}\n")
    print("| scorer | batch | wall s | audio s / s |\n|---|---|---|---|")
    for k, v in s["scorers"].items():
        print(f"| {k} | {v.get('batch', '')} | {v.get('wall_s', '')} | {v.get('audio_s_per_s', v.get('skipped', ''))} |")
r = load("rtf")
print(f"\n## VALL-E vs HALL-E generation ({st_rtf})\n")
if r:
    print(f"size {r['size']}, random weights, EOS disabled, batch 1\n")
    print("| seconds | model | AR steps | AR s | NAR s | decode s | RTF | RTF (AR+NAR) |\n|---|---|---|---|---|---|---|---|")
    for x in r["rows"]:
        print(f"| {x['seconds']:g} | {x['model']} | {x['ar_steps']} | {x['ar_s']:.2f} | {x['nar_s']:.2f} | "
              f"{x['decode_s']:.2f} | {x['rtf']:.3f} | {x['rtf_lm']:.3f} |")
t = load("train")
print(f"\n## AR training throughput ({st_train})\n")
if t:
    print(f"size {t['size']}, dtype {t['dtype']}\n")
    print("| model | params M | steps/s | audio s/s | tokens/s | peak GB |\n|---|---|---|---|---|---|")
    for x in t["rows"]:
        print(f"| {x['model']} | {x['params_m']} | {x['steps_per_s']} | {x['audio_s_per_s']} | {x['tokens_per_s']} | {x['peak_gb']} |")
EOF
echo "gpu-check: summary in $OUT/summary.md (status $STATUS)"
exit $STATUS
