#!/usr/bin/env bash
# bench/rnn/results.sh — Problem 2's comparison on real CoLA: the student
# (pipelines/cola-student.pipe) trained alone (rnn-cola.pipe) and distilled
# from GPT-2 + LoRA (distil-cola.pipe), over SEEDS, in experiment `cola-p2`
# of the store; then results.sql: dev accuracy and MCC, mean ± sd per
# pipeline.
#
# Usage: bench/rnn/results.sh        (from a built tree)
#   SEEDS="1 2 3"  MODES="rnn distil"  DB=lmpipe.db
#   BASE=default   the teacher's base (default: lmpipe's own, built and cached
#                  on first use — about 10 minutes on 2 cores), or a GPT-2 checkpoint
#   LMP_ARGS="-D CELL=elman -D EPOCHS=8"   settings for both pipelines
# The teacher trains once per seed (its stage is seeded) and its logits are
# cached, so rerunning a seed reuses them.
set -euo pipefail
top="$(cd "$(dirname "$0")/../.." && pwd)"
seeds="${SEEDS:-1 2 3}"
modes="${MODES:-rnn distil}"
db="${DB:-lmpipe.db}"
args=(${LMP_ARGS:-})
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-2}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
export LMPIPE_DATA_DIR="${LMPIPE_DATA_DIR:-$top/data}"  # CoLA: $LMPIPE_DATA_DIR/cola
lmp="$top/core/lmpipe"
for s in $seeds; do
    for m in $modes; do
        case $m in
        rnn) "$lmp" --db "$db" run "$top/pipelines/rnn-cola.pipe" --experiment cola-p2 --seed "$s" "${args[@]}" ;;
        distil) "$lmp" --db "$db" run "$top/pipelines/distil-cola.pipe" --experiment cola-p2 --seed "$s" \
                    -D BASE="${BASE:-default}" -D TEACHER_OUT="$(dirname "$db")/cola-teacher-seed$s" "${args[@]}" ;;
        *) echo "results.sh: unknown mode '$m' (rnn, distil)" >&2; exit 2 ;;
        esac
    done
done
"$lmp" --db "$db" sql "$(cat "$top/bench/rnn/results.sql")"
