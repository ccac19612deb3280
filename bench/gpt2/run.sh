#!/usr/bin/env bash
# bench/gpt2/run.sh — generation speed at GPT-2 124M shapes (random weights):
# batch 1, fp32, a 16-token prompt then 128 greedy tokens with the KV cache,
# median of 3, for lmpipe and for the PyTorch reference model (KV cache,
# torch.set_num_threads(2)) in the same run; the machine's read bandwidth and
# the bandwidth bound it implies (every weight is read once per token); peak
# RSS against the weight bytes; sgemv against sgemm with M=1.
#
# Usage: bench/gpt2/run.sh [WORKDIR]   (from a built tree: make first)
# WORKDIR (default /tmp/lmp-bench-gpt2) receives ~1 GB of random weights.
set -euo pipefail
top="$(cd "$(dirname "$0")/../.." && pwd)"
work="${1:-/tmp/lmp-bench-gpt2}"
py=/usr/bin/python3
P=16 N=128 REPS=3
# Two cores: OpenBLAS and OpenMP each get both, never at the same time
# (BLAS calls are made outside parallel regions), so nothing oversubscribes.
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-2}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"

[ -f "$top/core/.libs/liblmpipe.so" ] || { echo "run.sh: build the tree first (make)" >&2; exit 1; }
mkdir -p "$work"
cc -O2 -march=native -ffast-math -fopenmp -I"$top/core" -I"$top" "$top/bench/gpt2/bench_gen.c" \
   -o "$work/bench_gen" -L"$top/core/.libs" -llmpipe -lopenblas -lm -Wl,-rpath,"$top/core/.libs"
[ -f "$work/hf/model.safetensors" ] || { echo "making random 124M weights in $work ..."; $py "$top/bench/gpt2/peer.py" make "$work"; }

# the peer runs on the OpenBLAS kernels lmpipe selects (blas.h), to be fair
core=$("$work/bench_gen" corename)
export OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE:-$core}"
"$work/bench_gen" gen "$work/hf" $P $N $REPS > "$work/lmp.txt"
"$work/bench_gen" gen "$work/gpt2_124M.bin" $P $N $REPS > "$work/lmp_bin.txt"
$py "$top/bench/gpt2/peer.py" gen "$work" $P $N $REPS > "$work/peer.txt" 2>/dev/null
"$work/bench_gen" bandwidth 1024 5 > "$work/bw.txt"
"$work/bench_gen" gemv 5 > "$work/gemv.txt"

get() { awk -v k="$2" '$1 == k { print $2 }' "$work/$1"; }
bw=$(get bw.txt read_gb_per_s)
wmib=$(get lmp.txt weight_mib)
lt=$(get lmp.txt tok_per_s) ld=$(get lmp.txt decode_tok_per_s) pt=$(get peer.txt tok_per_s)
bt=$(get lmp_bin.txt tok_per_s)
same=$([ "$(grep '^ids' "$work/lmp.txt")" = "$(grep '^ids' "$work/peer.txt")" ] && echo yes || echo NO)
awk -v bw="$bw" -v w="$wmib" -v lt="$lt" -v ld="$ld" -v pt="$pt" -v bt="$bt" \
    -v rss="$(get lmp.txt peak_rss_mib)" -v rssb="$(get lmp_bin.txt peak_rss_mib)" -v same="$same" 'BEGIN {
  bound = bw * 1e9 / (w * 1048576)   # tokens/s if each token only streams the weights once
  printf "GPT-2 124M shapes, fp32, batch 1, %s-token prompt + %s greedy tokens, median of %s\n", '"$P"', '"$N"', '"$REPS"'
  printf "OpenBLAS kernels: %s, OPENBLAS_NUM_THREADS=%s, OMP_NUM_THREADS=%s\n", "'"$OPENBLAS_CORETYPE"'", "'"$OPENBLAS_NUM_THREADS"'", "'"$OMP_NUM_THREADS"'"
  printf "%-44s %12s\n", "metric", "value"
  printf "%-44s %12.2f\n", "lmpipe tok/s (HF safetensors, mmapped)", lt
  printf "%-44s %12.2f\n", "lmpipe tok/s, decode only (after 1st token)", ld
  printf "%-44s %12.2f\n", "lmpipe tok/s (llm.c .bin)", bt
  printf "%-44s %12.2f\n", "PyTorch peer tok/s (KV cache, 2 threads)", pt
  printf "%-44s %11.2fx\n", "lmpipe / peer", lt / pt
  printf "%-44s %12.2f\n", "read bandwidth GB/s (stream-like sum)", bw
  printf "%-44s %12.2f\n", "bandwidth bound tok/s (weights/token)", bound
  printf "%-44s %11.0f%%\n", "lmpipe decode / bound", 100 * ld / bound
  printf "%-44s %12.1f\n", "weight MiB", w
  printf "%-44s %12.1f (%.2fx)\n", "peak RSS MiB, safetensors", rss, rss / w
  printf "%-44s %12.1f (%.2fx)\n", "peak RSS MiB, llm.c .bin", rssb, rssb / w
  printf "%-44s %12s\n", "greedy ids identical to the peer", same
}'
echo "matrix-vector products (OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS):"
cat "$work/gemv.txt"
