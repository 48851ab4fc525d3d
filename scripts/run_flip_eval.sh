#!/usr/bin/env bash
# The flip evaluation of docs/evaluation.md (resumable: rerun the same command to continue).
# Usage: scripts/run_flip_eval.sh OUT.jsonl MODEL [MODEL ...]   (corpus: python scripts/make_corpus.py /tmp/freqrex-corpus)
set -euo pipefail
out=$1; shift
models=()
for m in "$@"; do models+=(--model "$m"); done
exec freqrex evaluate $(cat /tmp/freqrex-corpus/order.txt) "${models[@]}" --out "$out" \
  --budget 400 --iterations 8 --flip-budget 100 --ks 1,5 --stft-budget 400 --stft-flip-budget 100 \
  --cuts log --seed 0 --quiet
