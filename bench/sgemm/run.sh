#!/usr/bin/env bash
# bench/sgemm/run.sh — build sgemm_bench against OpenBLAS and print the
# GFLOP/s table for 1 and 2 threads (median of 5), once with the kernel
# OpenBLAS picks by itself and once with OPENBLAS_CORETYPE forced to the
# best one the CPU's flags allow; the peer, torch.mm at the same shapes
# (torch_peer.py), runs under the same settings when /usr/bin/python3 has
# torch.  Usage: run.sh [reps]
#
# Why both: OpenBLAS 0.3.21 does not know newer Xeons (e.g. family 6 model
# 207) and falls back to its generic "Prescott" (SSE3) kernels, 5-9x slower
# than the SkylakeX (AVX-512) ones this CPU can run.  OPENBLAS_CORETYPE must
# be in the environment before the library loads.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../lib.sh"
out="${TMPDIR:-/tmp}/lmp_sgemm_bench.$$"
trap 'rm -f "$out"' EXIT
cc -O2 -std=gnu11 -o "$out" "$here/sgemm_bench.c" $(pkg-config --cflags --libs openblas)

best=$(best_coretype)
corename() { OPENBLAS_VERBOSE=2 OPENBLAS_NUM_THREADS=1 "$@" "$out" 0 2>&1 >/dev/null | sed -n 's/^Core: //p' | tail -1; }

echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') (family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' '), model $(grep -m1 '^model[[:space:]]' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')), $(nproc) cores visible, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# OpenBLAS $(pkg-config --modversion openblas 2>/dev/null || echo '?')"
for ct in default $best; do
    if [ "$ct" = default ]; then env=(env -u OPENBLAS_CORETYPE); else env=(env OPENBLAS_CORETYPE=$ct); fi
    echo "## OPENBLAS_CORETYPE=${ct} -> kernel: $(corename "${env[@]}")"
    for t in 1 2; do
        "${env[@]}" OPENBLAS_NUM_THREADS=$t "$out" "${1:-5}"
        if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
            "${env[@]}" OPENBLAS_NUM_THREADS=$t OMP_NUM_THREADS=$t /usr/bin/python3 "$here/torch_peer.py" $t "${1:-5}"
        fi
        echo
    done
done
