#!/usr/bin/env bash
# Issue 41's soaks, one fresh seed each (printed in each log): 10^5 cases per new check.
# Each tally is rewritten as blocks finish (benchmarks/results/soak-*.json), so a stop keeps it,
# and a rerun with the same --out resumes it on its own seed (a finished one is left as it is).
# WORKERS=1 leaves a core for other work.
set -u
cd "$(dirname "$0")/.."
run="python -m comparisons.cli soak"
workers="${WORKERS:-2}"
$run --pieces --cases 100000 --out benchmarks/results/soak-pieces.json
for c in deeplearning-ai-step cs231n-lstm-step-sequence class-gru karpathy-lstm deeplearning-ai-lstm-step \
         class-lstm cs231n-lstm-step-in-place class-gru-2019; do
    $run --conventions "$c" --cases 100000 --workers "$workers" --out "benchmarks/results/soak-conventions-$c.json"
done
