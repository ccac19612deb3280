#!/usr/bin/env bash
# bench/rnn/run.sh — one epoch of training the RNN student on CoLA's
# training split (8551 rows, GPT-2 BPE, max_len 64): a 1-layer GRU, hidden
# 256, embedding 256 (x 50257 tokens), head on the last real state, batch
# 64 padded to its longest row, cross-entropy, Adam lr 1e-3, no clipping,
# rows in file order.
#   lmpipe: the rnn + train stages of a real `lmpipe run`; the time is the
#           train stage's (stages.seconds in the store), tokenizing excluded
#   peer:   PyTorch (peer.py) nn.Embedding + nn.GRU on pack_padded_sequence
#           + nn.Linear, torch.optim.Adam, torch.set_num_threads(2), on the
#           same token ids (dump_ids.c), the training loop timed
# Repetitions are interleaved (lmpipe, peer, lmpipe, ...) so that the load
# of the shared machine hits both alike; the median of REPS (default 3).
# Two BLAS settings as in bench/lora: (1) both on the best OpenBLAS kernels
# for this CPU (OPENBLAS_CORETYPE forced); (2) as each ships (lmpipe picks
# those kernels itself; PyTorch keeps what Debian's OpenBLAS picks).
#
# Usage: bench/rnn/run.sh [WORKDIR]   (from a built tree; CoLA from the data folder, data/cola
# or LMPIPE_DATA_DIR)
set -euo pipefail
top="$(cd "$(dirname "$0")/../.." && pwd)"
. "$top/bench/lib.sh"
work="${1:-/tmp/lmp-bench-rnn}"
data="${LMPIPE_DATA_DIR:-$top/data}"
py=/usr/bin/python3
REPS="${REPS:-3}" E=256 H=256 B=64
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-2}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"

[ -f "$top/core/.libs/liblmpipe.so" ] || { echo "run.sh: build the tree first (make)" >&2; exit 1; }
[ -r "$data/cola/in_domain_train.tsv" ] || { echo "run.sh: no CoLA in $data/cola" >&2; exit 1; }
mkdir -p "$work"
cc -O2 -I"$top/core/base" -I"$top/core/nn" -I"$top/core/engine" -I"$top/core/kit" -I"$top" "$top/bench/rnn/dump_ids.c" -o "$work/dump_ids" \
   -L"$top/core/.libs" -llmpipe -Wl,-rpath,"$top/core/.libs"
"$work/dump_ids" "$data/cola/in_domain_train.tsv" "$top/data/gpt2" 64 "$work/ids.txt"
cat > "$work/epoch.pipe" <<P
d   cola dir=$data/cola
t   gpt2-bpe max_len=64
st  rnn cell=gru embed=$E hidden=$H
fit train epochs=1 batch=$B lr=1e-3 optimizer=adam clip=0 shuffle=false eval_split=''
P

best=$(best_coretype)
lmp_epoch() { # one lmpipe run: the train stage's seconds and its training loss
    rm -f "$work/e.db"*
    "$@" "$top/core/lmpipe" --db "$work/e.db" run "$work/epoch.pipe" > /dev/null 2>&1
    "$top/core/lmpipe" --db "$work/e.db" sql --tsv "SELECT printf('%.3f', s.seconds), printf('%.4f', m.value)
        FROM stages s, metrics m WHERE s.stage = 'fit' AND m.stage = 'fit' AND m.key = 'train_loss'" | tail -n 1
}
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
tokens=$(awk '{ s += $2 } END { print s }' "$work/ids.txt")
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# CoLA train: $(wc -l < "$work/ids.txt") rows, $tokens tokens; GRU E=$E H=$H, batch $B, Adam; one epoch, median of $REPS"
printf '%-8s %-9s %12s %12s %10s %10s %8s\n' setting kernels lmpipe_s peer_s lmp_tok/s peer_tok/s speedup
for setting in same shipped; do
    if [ "$setting" = same ]; then
        [ -n "$best" ] || continue
        env=(env OPENBLAS_CORETYPE=$best)
    else
        env=(env -u OPENBLAS_CORETYPE)
    fi
    : > "$work/lmp.txt"; : > "$work/peer.txt"
    for r in $(seq "$REPS"); do
        lmp_epoch "${env[@]}" >> "$work/lmp.txt"
        "${env[@]}" $py "$top/bench/rnn/peer.py" "$work/ids.txt" $E $H $B |
            awk '$1 == "s_per_epoch" { s = $2 } $1 == "train_loss" { l = $2 } END { print s, l }' >> "$work/peer.txt"
    done
    ls=$(awk '{ print $1 }' "$work/lmp.txt" | median)
    ps=$(awk '{ print $1 }' "$work/peer.txt" | median)
    awk -v set="$setting" -v k="${best:-default}" -v ls="$ls" -v ps="$ps" -v tok="$tokens" 'BEGIN {
        if (set == "shipped") k = "own"
        printf "%-8s %-9s %12.2f %12.2f %10.0f %10.0f %7.2fx\n", set, k, ls, ps, tok / ls, tok / ps, ps / ls }'
    echo "#   train loss after the epoch: lmpipe $(awk '{ print $2 }' "$work/lmp.txt" | tr '\n' ' ')| peer $(awk '{ print $2 }' "$work/peer.txt" | tr '\n' ' ')"
done
