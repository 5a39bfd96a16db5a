#!/usr/bin/env bash
# Train the VALL-E / HALL-E pair on an espeak-ng corpus (issue 11 §2), resumably.
#
#   bash scripts/train-pair.sh [WORK_DIR] [--minutes M] [--nproc N] [--device D] [--steps N] [--ship] [--pack]
#
# WORK_DIR (default runs/pair) gets corpus/, valle/, halle/ and copies of the configs (kept
# when present: a campaign's edits survive; delete them to take the recipe's).
# Every stage resumes: run the same command again (in a later session too) and it continues
# from the last checkpoint; the corpus and the token shards are made once.
# In the background:  nohup bash scripts/train-pair.sh runs/pair > runs/pair.log 2>&1 &
# On GPUs:            bash scripts/train-pair.sh runs/pair --device cuda --nproc 4
# --pack: build the corpus and the token packs (WORK_DIR/pack/{valle,halle}, training/pack.py) with
# the configs that read them (pack-valle.toml, pack-halle.toml: no [speak]), then stop. A WORK_DIR
# holding those trains from the packs: no corpus, no espeak-ng, no audio (docs/training.md,
# "On one GPU"):  PYTHON=python3 bash scripts/train-pair.sh runs/pair --device cuda
# Needs the shipped 48 Hz teacher codec and MReQ tokenizer (baselines/training/shipped.py).
# --ship: then write both checkpoints in fp16 into baselines/checkpoints/pair/ (what the package
# ships, `halle-bench run --demo paper`) and print their sha256 for baselines/shipped.py.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-$ROOT/.venv/bin/python}
WORK=runs/pair
if [[ $# -gt 0 && $1 != --* ]]; then WORK=$1; shift; fi
MINUTES=240 NPROC=1 DEVICE=auto STEPS=() SHIP=0 PACK=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --minutes) MINUTES=$2; shift 2;;
    --nproc) NPROC=$2; shift 2;;
    --device) DEVICE=$2; shift 2;;
    --steps) STEPS=(--steps "$2"); shift 2;;
    --ship) SHIP=1; shift;;
    --pack) PACK=1; shift;;
    *) echo "unknown argument: $1" >&2; exit 2;;
  esac
done
mkdir -p "$WORK"
# A campaign keeps its own copies of the configs (edited to go further, or pointing at a codec
# that is not shipped yet): copy the recipe only where the work folder has none.
for c in pair-valle.toml pair-halle.toml; do
  if [[ -f "$WORK/$c" ]]; then echo "keeping $WORK/$c (delete it to take the recipe's)"; else cp "baselines/training/configs/$c" "$WORK/"; fi
done
cd "$WORK"

# Trained from token packs when the work folder holds them (built here with --pack, carried to a GPU)
CFG_V=pair-valle.toml CFG_H=pair-halle.toml
if [[ $PACK == 0 && -f pack/valle/pack.json && -f pack/halle/pack.json && -f pack-valle.toml && -f pack-halle.toml ]]; then
  echo "== token packs found: training from pack/valle and pack/halle (no corpus stage)"
  CFG_V=pack-valle.toml CFG_H=pack-halle.toml
else
echo "== corpus: $MINUTES min of long clips (1-8 sentences) + $((MINUTES / 2)) min of short ones (1-3), 8 espeak-ng voices"
# The texts: the seeded grammar plus the prose sentences of Python's own bundled documentation
# (pydoc_data), for words and phoneme contexts the grammar lacks; the short part gets grammar
# sentences of another seed. The corpus builder drops the demo's sentences from both.
"$PY" -m halle_bench.baselines.training.texts texts.txt
"$PY" -m halle_bench.baselines.training.texts texts-short.txt --short 3000 --exclude texts.txt
nice -n 10 "$PY" -m halle_bench.baselines.training.corpus corpus --minutes "$MINUTES" --max-sentences 8 --texts texts.txt
# VALL-E keeps only clips up to 20 s: without the short part it sees 53 of the 240 minutes and
# memorises them (training loss 0.96 vs validation 2.37 at step 1500 of the shipped run).
nice -n 10 "$PY" -m halle_bench.baselines.training.corpus corpus --minutes "$((MINUTES / 2))" --max-sentences 3 \
  --texts texts-short.txt --part short
cat corpus/train.jsonl corpus/short.jsonl > corpus/all.jsonl
fi
if [[ $PACK == 1 ]]; then
  echo "== token packs (tokens extracted here once, then copied with the text ids)"
  nice -n 10 "$PY" -m halle_bench.baselines.training.pack pair-valle.toml pack/valle --write-config pack-valle.toml
  nice -n 10 "$PY" -m halle_bench.baselines.training.pack pair-halle.toml pack/halle --write-config pack-halle.toml
  du -sh pack
  echo "carry $WORK/pack, $WORK/pack-valle.toml, $WORK/pack-halle.toml (docs/training.md, \"On one GPU\")"
  exit 0
fi

train() {
  if [[ $NPROC -gt 1 ]]; then
    nice -n 10 "$PY" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" -m halle_bench train "$@"
  else
    nice -n 10 "$PY" -m halle_bench train "$@"
  fi
}
echo "== VALL-E (48 Hz teacher codec)"
train "$CFG_V" --device "$DEVICE" "${STEPS[@]}"
echo "== HALL-E (MReQ 8 Hz tokens), continued from VALL-E"
train "$CFG_H" --device "$DEVICE" "${STEPS[@]}"
echo "done: $WORK/valle $WORK/halle (metrics.csv, curves.png in each)"
if [[ $SHIP == 1 ]]; then
  echo "== ship (fp16, on the package's own codec and tokenizer) -> baselines/checkpoints/pair/"
  "$PY" -m halle_bench.baselines.training.ship valle "$ROOT/baselines/checkpoints/pair/valle"
  "$PY" -m halle_bench.baselines.training.ship halle "$ROOT/baselines/checkpoints/pair/halle"
  echo "record these sha256 in baselines/shipped.py PAIR_SHA256 {\"valle\": ..., \"halle\": ...}"
fi
