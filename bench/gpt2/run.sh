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
cc -O2 -march=native -ffast-math -fopenmp -I"$top/core/base" -I"$top/core/nn" -I"$top/core/engine" -I"$top/core/kit" -I"$top" "$top/bench/gpt2/bench_gen.c" \
   -o "$work/bench_gen" -L"$top/core/.libs" -llmpipe -lopenblas -lm -Wl,-rpath,"$top/core/.libs"
[ -f "$work/hf/model.safetensors" ] || { echo "making random 124M weights in $work ..."; $py "$top/bench/gpt2/peer.py" make "$work"; }

# lmpipe selects OpenBLAS kernels itself (blasenv.h); the peer (which uses the
# same libopenblas through libblas.so.3) runs both with the default kernels
# and with lmpipe's choice, and is credited with the faster.
core=$("$work/bench_gen" corename)
# The machine is shared: interleave the runs (bandwidth sample, lmpipe from
# safetensors, lmpipe from llm.c, the peer) so that each sees the same load,
# and take medians over the repetitions; the bound uses the best bandwidth.
: > "$work/lmp.txt"; : > "$work/lmp_bin.txt"; : > "$work/peer.txt"; : > "$work/peer_k.txt"; : > "$work/bw.txt"
for r in $(seq $REPS); do
    "$work/bench_gen" bandwidth 1024 3 >> "$work/bw.txt"
    "$work/bench_gen" gen "$work/hf" $P $N 1 >> "$work/lmp.txt"
    "$work/bench_gen" gen "$work/gpt2_124M.bin" $P $N 1 >> "$work/lmp_bin.txt"
    $py "$top/bench/gpt2/peer.py" gen "$work" $P $N 1 >> "$work/peer.txt" 2>/dev/null
    OPENBLAS_CORETYPE=$core $py "$top/bench/gpt2/peer.py" gen "$work" $P $N 1 >> "$work/peer_k.txt" 2>/dev/null
    "$work/bench_gen" bandwidth 1024 3 >> "$work/bw.txt"
done
"$work/bench_gen" gemv 5 > "$work/gemv.txt"

med() { awk -v k="$2" '$1 == k { print $2 }' "$work/$1" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
maxof() { awk -v k="$2" '$1 == k && $2 > m { m = $2 } END { print m }' "$work/$1"; }
bw=$(maxof bw.txt read_gb_per_s) bwmed=$(med bw.txt read_gb_per_s)
wmib=$(med lmp.txt weight_mib)
lt=$(med lmp.txt tok_per_s) ld=$(med lmp.txt decode_tok_per_s)
pt0=$(med peer.txt tok_per_s) ptk=$(med peer_k.txt tok_per_s)
pt=$(awk -v a="$pt0" -v b="$ptk" 'BEGIN { print (a > b ? a : b) }')
bt=$(med lmp_bin.txt tok_per_s)
same=$([ "$(grep '^ids' "$work/lmp.txt" | sort -u)" = "$(grep '^ids' "$work/peer.txt" | sort -u)" ] && echo yes || echo NO)
awk -v pt0="$pt0" -v ptk="$ptk" -v bw="$bw" -v bwmed="$bwmed" -v w="$wmib" -v lt="$lt" -v ld="$ld" -v pt="$pt" -v bt="$bt" \
    -v rss="$(maxof lmp.txt peak_rss_mib)" -v rssb="$(maxof lmp_bin.txt peak_rss_mib)" -v same="$same" \
    -v load="$(cut -d' ' -f1-3 /proc/loadavg)" 'BEGIN {
  bound = bw * 1e9 / (w * 1048576)   # tokens/s if each token only streams the weights once
  printf "GPT-2 124M shapes, fp32, batch 1, %s-token prompt + %s greedy tokens, median of %s\n", '"$P"', '"$N"', '"$REPS"'
  printf "lmpipe on OpenBLAS %s kernels, OPENBLAS_NUM_THREADS=%s, OMP_NUM_THREADS=%s, load average %s\n", "'"$core"'", "'"$OPENBLAS_NUM_THREADS"'", "'"$OMP_NUM_THREADS"'", load
  printf "%-44s %12s\n", "metric", "value"
  printf "%-44s %12.2f\n", "lmpipe tok/s (HF safetensors, mmapped)", lt
  printf "%-44s %12.2f\n", "lmpipe tok/s, decode only (after 1st token)", ld
  printf "%-44s %12.2f\n", "lmpipe tok/s (llm.c .bin)", bt
  printf "%-44s %12.2f\n", "PyTorch peer tok/s, default BLAS kernels", pt0
  printf "%-44s %12.2f\n", "PyTorch peer tok/s, lmpipe'"'"'s BLAS kernels", ptk
  printf "%-44s %11.2fx\n", "lmpipe / best peer", lt / pt
  printf "%-44s %12.2f\n", "read bandwidth GB/s, best (median)", bw
  printf "%-44s %12.2f\n", "  ... median of the samples", bwmed
  printf "%-44s %12.2f\n", "bandwidth bound tok/s (weights/token, best)", bound
  printf "%-44s %11.0f%%\n", "lmpipe decode / bound", 100 * ld / bound
  printf "%-44s %12.1f\n", "weight MiB", w
  printf "%-44s %12.1f (%.2fx)\n", "peak RSS MiB, safetensors", rss, rss / w
  printf "%-44s %12.1f (%.2fx)\n", "peak RSS MiB, llm.c .bin", rssb, rssb / w
  printf "%-44s %12s\n", "greedy ids identical to the peer", same
}'
echo "matrix-vector products (OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS):"
cat "$work/gemv.txt"
