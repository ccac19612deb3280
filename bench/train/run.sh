#!/bin/sh
# bench/train/run.sh — speed of a full training step (forward, backward,
# clipping, AdamW; every weight trainable) of a GPT-2 124M-shape model at
# batch 4 x seq 64, in lmpipe and in PyTorch (torch.set_num_threads(2)) in
# the same run: ms/step (median of 3 steps after a warm-up, each side run
# twice, the better median kept), achieved GFLOP/s (6 * params * tokens +
# attention), and the ratio to this machine's sgemm peak measured right
# before by bench/sgemm (2 threads, GPT-2 shapes).
#
#   make && bench/train/run.sh [reps] [B] [T]
#
# lmpipe runs with the settings the lmpipe command applies to itself
# (core/base/blasenv.c): OMP_WAIT_POLICY=PASSIVE and, where OpenBLAS would fall
# back to its generic kernel, OPENBLAS_CORETYPE for the CPU's vector width;
# PyTorch uses its own bundled kernels (oneDNN / MKL) either way.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
here="$top/bench/train"
. "$top/bench/lib.sh"
reps=${1:-3} B=${2:-4} T=${3:-64}
[ -f "$top/core/.libs/liblmpipe.so" ] || { echo "run.sh: build first (make)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -O2 -std=gnu11 -I"$top/core/base" -I"$top/core/nn" -I"$top/core/engine" -I"$top/core/kit" -I"$top" "$here/train_bench.c" -L"$top/core/.libs" -llmpipe \
   -Wl,-rpath,"$top/core/.libs" -o "$tmp/train_bench"
cc -O2 -std=gnu11 -o "$tmp/sgemm_bench" "$top/bench/sgemm/sgemm_bench.c" $(pkg-config --cflags --libs openblas)

core=$(best_coretype)
export OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=2 OMP_NUM_THREADS=2
[ -n "$core" ] && [ -z "${OPENBLAS_CORETYPE:-}" ] && export OPENBLAS_CORETYPE=$core

echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-default}"
"$tmp/sgemm_bench" 3 > "$tmp/sgemm"
peak=$(sed -n 's/^peak (best median) with [0-9]* thread(s): \([0-9.]*\) GFLOP\/s/\1/p' "$tmp/sgemm")
echo "# sgemm peak (2 threads, best median over GPT-2 shapes): $peak GFLOP/s"

best() { sort -k2 -n "$1" | head -1; }
for i in 1 2; do
    "$tmp/train_bench" "$reps" "$B" "$T" >> "$tmp/lmp"
    /usr/bin/python3 "$here/torch_train.py" "$reps" "$B" "$T" 2 >> "$tmp/torch"
done
set -- $(best "$tmp/lmp")
lmp_ms=$2 gflop=$5
set -- $(best "$tmp/torch")
torch_ms=$2
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
awk -v l="$lmp_ms" -v t="$torch_ms" -v g="$gflop" -v p="$peak" -v B="$B" -v T="$T" 'BEGIN {
    printf "%-8s %10s %10s %12s %10s\n", "", "ms/step", "GFLOP/s", "of sgemm pk", "vs torch"
    printf "%-8s %10.1f %10.1f %11.0f%% %9.2fx\n", "lmpipe", l, g / (l / 1000), 100 * g / (l / 1000) / p, t / l
    printf "%-8s %10.1f %10.1f %11.0f%% %9.2fx\n", "torch", t, g / (t / 1000), 100 * g / (t / 1000) / p, 1
    printf "(GPT-2 124M shape, batch %d x seq %d, %.1f GFLOP per step)\n", B, T, g
}'
