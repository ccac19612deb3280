#!/usr/bin/env bash
# bench/epoch/run.sh — one CoLA training epoch of LoRA at GPT-2 124M shapes
# (random weights), end to end: what a user's `lmpipe run` of
# pipelines/lora-cola.pipe costs, against an independent PyTorch script
# doing the same epoch on the same batches.
#
#   lmpipe: `lmpipe run` of a pipeline with lora-cola.pipe's stages and
#           train settings (LoRA r=4 alpha 8 dropout 0.1 on the four linear
#           kinds, head, AdamW lr 5e-4 wd 0.01, linear schedule, 6% warmup,
#           clip 1), one epoch, no dev pass; the time is the train stage's
#           train_seconds (the epoch's steps), the whole command's wall
#           time beside it
#   peer:   bench/epoch/peer.py (PyTorch, torch.set_num_threads(2)) on the
#           batches lmpipe takes (dump_batches.c: same rows, same order, same
#           padding policy), its training loop timed
# Both with 2 threads on the same OpenBLAS kernels (OPENBLAS_CORETYPE forced
# to the best this CPU has), and the sgemm peak (512x768x3072, 2 threads)
# measured in the same run.  The limit: forward + input-gradient backward of
# the 85M non-embedding weights over the real tokens, 4 x 85M FLOP per real
# token, at the sgemm peak.
#
# Usage: bench/epoch/run.sh [--steps N] [--study] [--no-group] [--only lmpipe|peer] [WORKDIR]
#   --steps N   only the first N batches (quick iteration, profiling)
#   --study     the original study's settings: batch 128, every row padded
#               (or cut) to 20 tokens; default: lora-cola.pipe's batch 32,
#               dynamic padding
#   --no-group  group_by_length=0 (the order before length grouping)
# WORKDIR (default /tmp/lmp-bench-gpt2, shared with bench/gpt2 and
# bench/lora) receives ~1 GB of random weights.
set -euo pipefail
top="$(cd "$(dirname "$0")/../.." && pwd)"
. "$top/bench/lib.sh"
py=/usr/bin/python3
steps=0 study=0 group=50 only=
while [ $# -gt 0 ]; do
    case "$1" in
        --steps) steps="$2"; shift 2 ;;
        --study) study=1; shift ;;
        --no-group) group=0; shift ;;
        --only) only="$2"; shift 2 ;;
        *) break ;;
    esac
done
work="${1:-/tmp/lmp-bench-gpt2}"
data="${LMPIPE_DATA_DIR:-$top/data}"
SEED=1 MAXLEN=64
if [ $study = 1 ]; then B=128 PAD="padding=fixed max_len=20" FIXED=20 group=0
else B=32 PAD="padding=dynamic" FIXED=0; fi
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-2}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
best=$(best_coretype)
[ -n "$best" ] && export OPENBLAS_CORETYPE=$best

[ -f "$top/core/.libs/liblmpipe.so" ] || { echo "run.sh: build the tree first (make)" >&2; exit 1; }
mkdir -p "$work"
cc -O2 -march=native -fopenmp -I"$top/core/base" -I"$top/core/nn" -I"$top/core/engine" -I"$top/core/kit" -I"$top" "$top/bench/lora/bench_lora.c" \
   -o "$work/bench_lora" -L"$top/core/.libs" -llmpipe -lopenblas -lm -Wl,-rpath,"$top/core/.libs"
cc -O2 -I"$top/core/base" -I"$top/core/nn" -I"$top/core/engine" -I"$top/core/kit" -I"$top" "$top/bench/epoch/dump_batches.c" -o "$work/dump_batches" \
   -L"$top/core/.libs" -llmpipe -Wl,-rpath,"$top/core/.libs"
[ -f "$work/hf/model.safetensors" ] || { echo "making random 124M weights in $work ..."; $py "$top/bench/gpt2/peer.py" make "$work"; }
"$work/dump_batches" "$data/cola/in_domain_train.tsv" "$top/data/gpt2" $MAXLEN $SEED $B $group \
    "$work/epoch_ids.txt" "$work/epoch_batches.txt"

cat > "$work/epoch.pipe" <<P
base  gpt2             model=$work/hf
data  cola             dir=$data/cola
tok   gpt2-bpe         max_len=$MAXLEN @tokenizer=base
clf   gpt2-classifier  @lm=base @tokenizer=tok
ad    lora             rank=4 alpha=8 dropout=0.1 targets=attn.c_attn,attn.c_proj,mlp.c_fc,mlp.c_proj
fit   train            epochs=1 batch=$B lr=5e-4 weight_decay=0.01 schedule=linear warmup=0.06 \\
                       eval_split='' $PAD group_by_length=$group max_steps=$steps
P
lmp=("$top/core/lmpipe" --db "$work/epoch.db")
rm -f "$work"/epoch.db*
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# one CoLA epoch, GPT-2 124M shapes, LoRA r=4, batch $B, ${PAD}, group_by_length=$group, steps ${steps/#0/all}, kernels ${best:-default}"
"$work/bench_lora" sgemm 5 > "$work/epoch_sgemm0.txt"
lt=nan lw=nan lwaste=nan lreal=0 lloss=nan
if [ "$only" != peer ]; then
    t0=$(date +%s.%N)
    LMPIPE_HOME="$work/lmpipe-data" "${lmp[@]}" run "$work/epoch.pipe" --seed $SEED --no-cache > "$work/epoch_lmp.log" 2>&1 ||
        { cat "$work/epoch_lmp.log"; exit 1; }
    lw=$(echo "$(date +%s.%N) - $t0" | bc)
    q() { "${lmp[@]}" sql --tsv "SELECT value FROM latest_metrics WHERE stage = 'fit' AND key = '$1'" | tail -1; }
    lt=$(q train_seconds) lwaste=$(q padding_waste) lloss=$(q train_loss)
fi
pt=nan pw=nan preal=0 ppad=0 ploss=nan
if [ "$only" != lmpipe ]; then
    t0=$(date +%s.%N)
    $py "$top/bench/epoch/peer.py" "$work" "$work/epoch_ids.txt" "$work/epoch_batches.txt" $FIXED $steps \
        > "$work/epoch_peer.txt" 2> "$work/epoch_peer.log" || { cat "$work/epoch_peer.log"; exit 1; }
    pw=$(echo "$(date +%s.%N) - $t0" | bc)
    get() { awk -v k="$1" '$1 == k { print $2 }' "$work/epoch_peer.txt"; }
    pt=$(get train_seconds) preal=$(get real_tokens) ppad=$(get padded_tokens) ploss=$(get train_loss)
fi
"$work/bench_lora" sgemm 5 > "$work/epoch_sgemm1.txt"
# real tokens of the batches taken (the peer counts them; the same rows either side)
read -r real padded < <(awk -v n="$steps" -v F=$FIXED 'NR == FNR { len[FNR - 1] = $2; next }
    n > 0 && FNR > n { exit }
    { T = 0; s = 0; for (i = 1; i <= NF; i++) { l = len[$i]; if (F && l > F) l = F; s += l; if (l > T) T = l }
      if (F) T = F; r += s; p += NF * T }
    END { print r, p }' "$work/epoch_ids.txt" "$work/epoch_batches.txt")
p1=$(awk '$1 == "sgemm_gflop_per_s" { print $2 }' "$work/epoch_sgemm0.txt")
p2=$(awk '$1 == "sgemm_gflop_per_s" { print $2 }' "$work/epoch_sgemm1.txt")
awk -v lt="$lt" -v lw="$lw" -v pt="$pt" -v pw="$pw" -v real="$real" -v padded="$padded" \
    -v lwaste="$lwaste" -v lloss="$lloss" -v ploss="$ploss" -v p1="$p1" -v p2="$p2" \
    -v load="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
  P = 12 * 12 * 768 * 768                  # non-embedding weights of the 12 blocks
  flop = 4 * P * real                      # forward + input-gradient backward, real tokens
  peak = p1 > p2 ? p1 : p2
  printf "%-52s %12s %12s\n", "metric", "lmpipe", "PyTorch"
  printf "%-52s %12.1f %12.1f\n", "epoch training time, s", lt, pt
  printf "%-52s %12.1f %12.1f\n", "whole command wall time, s", lw, pw
  printf "%-52s %12.0f %12.0f\n", "real tokens/s", real / lt, real / pt
  printf "%-52s %12.4f %12.4f\n", "train loss (mean over the epoch)", lloss, ploss
  printf "%-52s %12.3f %12.3f\n", "padding waste (padded / real tokens - 1)", lwaste, padded / real - 1
  printf "%-52s %12.1f %12.1f\n", "GFLOP/s on real tokens (4 x 85M x tokens / time)", flop / lt / 1e9, flop / pt / 1e9
  printf "%-52s %11.0f%% %11.0f%%\n", "  of the sgemm peak", 100 * flop / lt / 1e9 / peak, 100 * flop / pt / 1e9 / peak
  printf "%-52s %12.1f %12.1f\n", "GFLOP/s on all positions computed (padding too)", 4 * P * padded / lt / 1e9, 4 * P * padded / pt / 1e9
  printf "%-52s %11.2fx\n", "lmpipe speed / PyTorch", pt / lt
  printf "%-52s %12.1f\n", "sgemm GFLOP/s 512x768x3072, 2 threads (best of 2)", peak
  printf "%-52s %12.1f\n", "limit time at that peak, s", flop / peak / 1e9
  printf "%-52s %11.2fx\n", "lmpipe time / limit time", lt / (flop / peak / 1e9)
  printf "%-52s %12d %12d\n", "real tokens, positions computed", real, padded
  printf "# sgemm before/after: %.1f / %.1f GFLOP/s; load at the end %s\n", p1, p2, load
}'
