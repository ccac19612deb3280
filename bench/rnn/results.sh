#!/usr/bin/env bash
# bench/rnn/results.sh — Problem 2's comparison on real CoLA: the student
# (pipelines/cola-student.pipe) trained alone (rnn-cola.pipe) and, when a
# GPT-2 checkpoint is given, distilled from GPT-2 + LoRA (distil-cola.pipe),
# over SEEDS, in experiment `cola-p2` of the store; then results.sql: dev
# accuracy and MCC, mean ± sd per pipeline.
#
# Usage: bench/rnn/results.sh [BASE]     (from a built tree)
#   SEEDS="1 2 3"  DB=lmpipe.db  and any -D settings in LMP_ARGS, e.g.
#   LMP_ARGS="-D CELL=elman -D EPOCHS=8"
# The teacher (distil) trains once per seed; its logits are cached per seed
# (the teacher stage is seeded), so rerunning a seed reuses them.
set -euo pipefail
top="$(cd "$(dirname "$0")/../.." && pwd)"
base="${1:-}"
seeds="${SEEDS:-1 2 3}"
db="${DB:-lmpipe.db}"
args=(${LMP_ARGS:-})
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-2}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
export LMPIPE_DATA_DIR="${LMPIPE_DATA_DIR:-$top/../shared/data}"  # CoLA: $LMPIPE_DATA_DIR/cola
lmp="$top/core/lmpipe"
for s in $seeds; do
    "$lmp" --db "$db" run "$top/pipelines/rnn-cola.pipe" --experiment cola-p2 --seed "$s" "${args[@]}"
    if [ -n "$base" ]; then
        "$lmp" --db "$db" run "$top/pipelines/distil-cola.pipe" --experiment cola-p2 --seed "$s" -D BASE="$base" \
            -D TEACHER_OUT="$(dirname "$db")/cola-teacher-seed$s" "${args[@]}"
    fi
done
"$lmp" --db "$db" sql "$(cat "$top/bench/rnn/results.sql")"
