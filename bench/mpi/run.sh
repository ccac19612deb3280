#!/usr/bin/env bash
# bench/mpi/run.sh — data-parallel LoRA fine-tuning under mpirun: the study's
# LoRA CoLA step (GPT-2 124M shapes, random weights; LoRA r=4 on the four
# linear kinds; Adam lr 1e-3; batch 128; every sentence padded to 20 tokens)
# run by `lmpipe run` with N=1 and N=2 ranks, one OpenBLAS thread each, in
# the same session, interleaved over rounds.  Per setting: the median over
# rounds and epochs of s/step (the
# train stage's train_seconds / steps), the speed-up over N=1, and the time
# per step spent in the gradient allreduce (allreduce_seconds).  The loss of
# every step is compared between N=1 and N=2 as well (they must agree).
#
# Usage: bench/mpi/run.sh [WORKDIR] [STEPS_PER_EPOCH] [EPOCHS] [ROUNDS]
# (from a tree configured with --with-mpi and built; WORKDIR, default
# /tmp/lmp-bench-gpt2 shared with bench/gpt2, receives ~1 GB of random
# weights made by bench/gpt2/peer.py, which needs python3-torch.)
set -euo pipefail
top="$(cd "$(dirname "$0")/../.." && pwd)"
work="${1:-/tmp/lmp-bench-gpt2}"
steps="${2:-2}" epochs="${3:-2}" rounds="${4:-3}"
py=/usr/bin/python3
grep -q '^#define HAVE_MPI 1' "$top/config.h" 2>/dev/null ||
    { echo "run.sh: configure with --with-mpi and build first" >&2; exit 1; }
mpirun=$(sed -n 's/^MPIRUN = //p' "$top/Makefile")
mkdir -p "$work"
[ -f "$work/hf/model.safetensors" ] || { echo "making random 124M weights in $work ..."; $py "$top/bench/gpt2/peer.py" make "$work"; }
data="${LMPIPE_DATA_DIR:-$top/data}"
[ -r "$data/cola/in_domain_train.tsv" ] || { echo "run.sh: no CoLA in $data (set LMPIPE_DATA_DIR)" >&2; exit 1; }

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
db="$work/mpi-bench.db"
rm -f "$db" "$db-wal" "$db-shm"
cat > "$work/mpi-bench.pipe" <<P
data cola dir=$data/cola max_train=$((128 * steps))
tok  gpt2-bpe max_len=64
clf  gpt2-classifier base=$work/hf @tokenizer=tok
ad   lora rank=4 alpha=4 targets=attn.c_attn,attn.c_proj,mlp.c_fc,mlp.c_proj
fit  train epochs=$epochs batch=128 optimizer=adam lr=1e-3 padding=fixed max_len=20 eval_split='' clip=0 shuffle=false
P
lmp="$top/core/lmpipe"
"$lmp" --db "$db" run "$work/mpi-bench.pipe" --check >/dev/null
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(getconf _NPROCESSORS_ONLN) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# LoRA CoLA step, GPT-2 124M shapes, batch 128 x 20 tokens, 1 OpenBLAS thread per rank;"
echo "# median over $rounds interleaved rounds x $epochs epochs x $steps steps"
# each round: N=1, N=2, and for context one rank with 2 OpenBLAS threads
for r in $(seq 1 "$rounds"); do
    "$lmp" --db "$db" run "$work/mpi-bench.pipe" --no-cache --experiment n1 2> "$work/mpi-n1.log"
    "$mpirun" -np 2 --oversubscribe "$lmp" --db "$db" run "$work/mpi-bench.pipe" --no-cache --experiment n2 \
        2> "$work/mpi-n2.log"
    OPENBLAS_NUM_THREADS=2 OMP_NUM_THREADS=2 "$lmp" --db "$db" run "$work/mpi-bench.pipe" --no-cache \
        --experiment n1t2 2> "$work/mpi-n1t2.log"
done
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
q() { sqlite3 "$db" "$1"; }
per_step() {
    q "SELECT m.value / $steps FROM metrics m JOIN runs r ON r.id = m.run_id JOIN experiments e ON e.id = r.experiment_id
       WHERE e.name = '$1' AND m.stage = 'fit' AND m.key = '$2'" | median
}
s1=$(per_step n1 train_seconds) s2=$(per_step n2 train_seconds) r2=$(per_step n2 allreduce_seconds)
s3=$(per_step n1t2 train_seconds)
# every N=2 run against the N=1 run of its round (same data, same order)
diff=$(q "SELECT max(abs(a.value - b.value)) FROM metrics a JOIN metrics b ON b.run_id = a.run_id + 1
          AND b.stage = a.stage AND b.key = a.key AND b.step = a.step JOIN runs r ON r.id = a.run_id
          JOIN experiments e ON e.id = r.experiment_id WHERE e.name = 'n1' AND a.stage = 'fit' AND a.key = 'loss'")
printf '%-6s %10s %9s %18s %12s\n' ranks "s/step" speed-up "allreduce ms/step" "of the step"
awk -v s1="$s1" -v s2="$s2" -v r2="$r2" -v s3="$s3" 'BEGIN {
    printf "%-6s %10.2f %9s %18s %12s\n", "N=1", s1, "1.00x", "-", "-"
    printf "%-6s %10.2f %8.2fx %18.1f %11.1f%%\n", "N=2", s2, s1 / s2, 1000 * r2, 100 * r2 / s2
    printf "%-6s %10.2f %8.2fx %18s %12s   context: one rank, 2 OpenBLAS threads\n", "N=1x2t", s3, s1 / s3, "-", "-" }'
echo "# largest |loss(N=1) - loss(N=2)| at any step: $diff"
