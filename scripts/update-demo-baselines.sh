#!/usr/bin/env bash
# Regenerate the committed demo leaderboards in results/ (do this on purpose, when a
# change is meant to move the demo's numbers; review the diff before committing).
#   results/demo/     the full embedded demo (halle-bench run, no config)
#   results/demo-ci/  the reduced demo the test suite gates on (--limit 4)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HB="$ROOT/.venv/bin/halle-bench"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$HB" run --out "$tmp/ci" --limit 4 --quiet
"$HB" run --out "$tmp/full" --quiet
for pair in "ci:demo-ci" "full:demo"; do
  src="$tmp/${pair%%:*}"; dst="$ROOT/results/${pair##*:}"
  mkdir -p "$dst"
  cp "$src/leaderboard.csv" "$dst/leaderboard.csv"
  cp "$src/utterances.csv" "$dst/utterances.csv"
  cp "$src/env.json" "$dst/env.json"
done
echo "updated results/demo and results/demo-ci"
