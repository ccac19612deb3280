#!/usr/bin/env bash
# bench/lora/run.sh — one LoRA fine-tuning step of a GPT-2 sequence
# classifier at 124M shapes (random weights): LoRA r=4 on attn.c_attn,
# attn.c_proj, mlp.c_fc and mlp.c_proj, base frozen, batch 32 x 16 tokens,
# cross-entropy on the last token's score head, backward, clip, AdamW.
# lmpipe (bench_lora.c) and the PyTorch peer (peer.py: the reference model
# with a hand-written LoRA, torch.set_num_threads(2)) in the same run: median
# of 3 steps after a warm-up, s/step, tokens/s, peak RSS, and the matmul
# rate as a fraction of sgemm's at the step's biggest shape.
#
# Two settings: (1) both on the same, best OpenBLAS kernels for this CPU
# (OPENBLAS_CORETYPE forced for both); (2) as each ships: lmpipe selects
# those kernels itself (core/base/blasenv.h, re-exec), PyTorch keeps what Debian's
# OpenBLAS picks on its own (the generic Prescott kernels on CPUs it does not
# know — see bench/sgemm).
#
# Usage: bench/lora/run.sh [WORKDIR]   (from a built tree: make first)
# WORKDIR (default /tmp/lmp-bench-gpt2, shared with bench/gpt2) receives
# ~1 GB of random weights.
set -euo pipefail
top="$(cd "$(dirname "$0")/../.." && pwd)"
. "$top/bench/lib.sh"
work="${1:-/tmp/lmp-bench-gpt2}"
py=/usr/bin/python3
B=32 T=16 REPS=3
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-2}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"

[ -f "$top/core/.libs/liblmpipe.so" ] || { echo "run.sh: build the tree first (make)" >&2; exit 1; }
mkdir -p "$work"
cc -O2 -march=native -fopenmp -I"$top/core/base" -I"$top/core/nn" -I"$top/core/engine" -I"$top/core/kit" -I"$top" "$top/bench/lora/bench_lora.c" \
   -o "$work/bench_lora" -L"$top/core/.libs" -llmpipe -lopenblas -lm -Wl,-rpath,"$top/core/.libs"
[ -f "$work/hf/model.safetensors" ] || { echo "making random 124M weights in $work ..."; $py "$top/bench/gpt2/peer.py" make "$work"; }

best=$(best_coretype)
get() { awk -v k="$2" '$1 == k { print $2 }' "$work/$1"; }
torch_kernel() { LMPIPE_BLAS_REEXEC=1 "$@" "$work/bench_lora" sgemm 1 | awk '$1 == "kernel" { print $2 }'; }
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# GPT-2 124M shapes, LoRA r=4 on all four linear kinds, batch $B x $T, one AdamW step, median of $REPS"
for setting in same shipped; do
    if [ "$setting" = same ]; then
        [ -n "$best" ] || continue
        env=(env OPENBLAS_CORETYPE=$best)
    else
        env=(env -u OPENBLAS_CORETYPE)
    fi
    "${env[@]}" "$work/bench_lora" step "$work/hf" $B $T $REPS > "$work/lora_lmp.txt" 2>/dev/null
    "${env[@]}" "$work/bench_lora" sgemm 5 > "$work/lora_sgemm.txt"
    "${env[@]}" $py "$top/bench/lora/peer.py" step "$work" $B $T $REPS > "$work/lora_peer.txt" 2>/dev/null
    awk -v set="$setting" -v lk="$(get lora_lmp.txt kernel)" -v pk="$(torch_kernel "${env[@]}")" \
        -v ls="$(get lora_lmp.txt s_per_step)" -v lt="$(get lora_lmp.txt tok_per_s)" \
        -v ps="$(get lora_peer.txt s_per_step)" -v pt="$(get lora_peer.txt tok_per_s)" \
        -v lr="$(get lora_lmp.txt peak_rss_mib)" -v pr="$(get lora_peer.txt peak_rss_mib)" \
        -v gf="$(get lora_lmp.txt gflop_per_step)" -v peak="$(get lora_sgemm.txt sgemm_gflop_per_s)" \
        -v ltr="$(get lora_lmp.txt trainable)" -v ptr="$(get lora_peer.txt trainable)" \
        -v load="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
      printf "## %s (load %s)\n", set == "same" ? "same OpenBLAS kernels for both" : "as shipped", load
      printf "%-46s %12s %12s\n", "metric", "lmpipe", "PyTorch"
      printf "%-46s %12s %12s\n", "OpenBLAS kernels", lk, pk
      printf "%-46s %12.3f %12.3f\n", "s/step", ls, ps
      printf "%-46s %12.1f %12.1f\n", "tokens/s", lt, pt
      printf "%-46s %12.1f %12.1f\n", "peak RSS MiB", lr, pr
      printf "%-46s %12d %12d\n", "trainable parameters", ltr, ptr
      printf "%-46s %11.2fx\n", "lmpipe speed / peer", ps / ls
      printf "%-46s %12.1f\n", "matmul GFLOP per step", gf
      printf "%-46s %12.1f\n", "lmpipe GFLOP/s (matmul work / step time)", gf / ls
      printf "%-46s %12.1f\n", "sgemm GFLOP/s, 512x768x3072, same threads", peak
      printf "%-46s %11.0f%%\n", "lmpipe / sgemm peak", 100 * gf / ls / peak
    }'
done
