#!/usr/bin/env bash
# bench/gpt2/weights.sh — batch-1 generation with f32, f16 and q8 weights
# (lmp_gpt2_set_weights, core/nn/qmat.h) at GPT-2 124M shapes with random
# weights: a 16-token prompt then 128 greedy tokens, 2 threads, the three
# formats interleaved in each of REPS rounds (median reported, so each sees
# the same machine load), ratios against f32 of the same run, and each
# format's bandwidth bound (bytes of weight matrices per token / the best
# read bandwidth measured in the run).  Then held-out perplexity in each
# format of a small GPT-2 trained here on Moby-Dick (the weights of a random
# model would say nothing about accuracy).
#
# Usage: bench/gpt2/weights.sh [WORKDIR]   (from a built tree: make first)
# WORKDIR (default /tmp/lmp-bench-gpt2, shared with run.sh) receives ~1 GB.
set -euo pipefail
top="$(cd "$(dirname "$0")/../.." && pwd)"
work="${1:-/tmp/lmp-bench-gpt2}"
py=/usr/bin/python3
P=16 N=128 REPS="${REPS:-3}"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-2}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"

[ -f "$top/core/.libs/liblmpipe.so" ] || { echo "weights.sh: build the tree first (make)" >&2; exit 1; }
mkdir -p "$work"
cc -O2 -march=native -ffast-math -fopenmp -I"$top/core/base" -I"$top/core/nn" -I"$top/core/engine" -I"$top/core/kit" -I"$top" "$top/bench/gpt2/bench_gen.c" \
   -o "$work/bench_gen" -L"$top/core/.libs" -llmpipe -lopenblas -lm -Wl,-rpath,"$top/core/.libs"
[ -f "$work/hf/model.safetensors" ] || { echo "making random 124M weights in $work ..."; $py "$top/bench/gpt2/peer.py" make "$work"; }

: > "$work/bw_w.txt"
for f in f32 f16 q8; do : > "$work/gen_$f.txt"; done
for r in $(seq "$REPS"); do
    "$work/bench_gen" bandwidth 1024 3 >> "$work/bw_w.txt"
    for f in f32 f16 q8; do "$work/bench_gen" gen "$work/hf" $P $N 1 $f >> "$work/gen_$f.txt"; done
done
"$work/bench_gen" bandwidth 1024 3 >> "$work/bw_w.txt"

med() { awk -v k="$2" '$1 == k { print $2 }' "$work/$1" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
bw=$(awk '$1 == "read_gb_per_s" && $2 > m { m = $2 } END { print m }' "$work/bw_w.txt")
t32=$(med gen_f32.txt tok_per_s)
same16=$([ "$(grep '^ids' "$work/gen_f16.txt" | sort -u)" = "$(grep '^ids' "$work/gen_f32.txt" | sort -u)" ] && echo yes || echo no)
echo "GPT-2 124M shapes, random weights, batch 1, $P-token prompt + $N greedy tokens, median of $REPS"
echo "OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS OMP_NUM_THREADS=$OMP_NUM_THREADS, load average $(cut -d' ' -f1-3 /proc/loadavg), best read bandwidth $bw GB/s"
printf "%-8s %10s %10s %14s %14s %10s %10s\n" weights "tok/s" "decode" "x f32" "MiB/token" "bound" "% bound"
for f in f32 f16 q8; do
    t=$(med gen_$f.txt tok_per_s) d=$(med gen_$f.txt decode_tok_per_s) mib=$(med gen_$f.txt stream_mib)
    awk -v f=$f -v t="$t" -v d="$d" -v t32="$t32" -v mib="$mib" -v bw="$bw" 'BEGIN {
        bound = bw * 1e9 / (mib * 1048576)
        printf "%-8s %10.2f %10.2f %13.2fx %14.1f %10.1f %9.0f%%\n", f, t, d, t / t32, mib, bound, 100 * d / bound }'
done
echo "f16 greedy ids identical to f32 (random weights): $same16"

# --- perplexity of held-out text, each format, on a small model trained here
corpus="$top/data/corpus/moby-dick.txt.gz"
[ -r "$corpus" ] || { echo "no $corpus: perplexity skipped"; exit 0; }
gzip -dc "$corpus" > "$work/moby.txt"
head -c 1000000 "$work/moby.txt" > "$work/ppl_train.txt"
tail -c 100000 "$work/moby.txt" > "$work/ppl_heldout.txt"
cat > "$work/ppl.pipe" <<PIPE
tok   bpe-train  vocab_size=2048 files=$work/ppl_train.txt
lm    pretrain   files=$work/ppl_train.txt n_layer=2 n_head=2 n_embd=96 n_ctx=128 \\
                 steps=${PPL_STEPS:-600} batch=8 warmup=30 lr=4e-3 val_fraction=0.02 eval_every=0 sample_every=0
p32   perplexity file=$work/ppl_heldout.txt
p16   perplexity file=$work/ppl_heldout.txt weights=f16
p8    perplexity file=$work/ppl_heldout.txt weights=q8
PIPE
rm -f "$work/ppl.db"
(cd "$work" && "$top/core/lmpipe" --db "$work/ppl.db" run "$work/ppl.pipe" > "$work/ppl.log" 2>&1)
q() { sqlite3 "$work/ppl.db" "SELECT value FROM metrics WHERE run_id=1 AND stage='$1' AND key='$2'"; }
echo "held-out perplexity (Moby-Dick, last 100 kB; GPT-2 2 x 96, vocabulary 2048, trained ${PPL_STEPS:-600} steps on the first 1 MB):"
p32=$(q p32 ppl)
for f in 32 16 8; do
    p=$(q p$f ppl)
    awk -v f=$f -v p="$p" -v p32="$p32" 'BEGIN { printf "  %-4s ppl %10.4f  (%+.4f%% vs f32)\n", (f == 32 ? "f32" : f == 16 ? "f16" : "q8"), p, 100 * (p / p32 - 1) }'
done
