#!/usr/bin/env bash
# The pair2 campaign (issue 16): resumable; run again in any session on this machine.
cd /work/main
export OMP_NUM_THREADS=${THREADS:-1}
exec bash scripts/train-pair.sh /work/runs/pair2 --device cpu
