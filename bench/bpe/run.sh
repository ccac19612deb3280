#!/bin/sh
# bench/bpe/run.sh — single-thread speed and memory of lmpipe's BPE tokenizer
# next to the reference tokenizer (npm gpt-3-encoder 1.1.4 under node), on
# the data folder's corpus/state-of-the-union.txt(.gz); medians of 3 runs, each a
# fresh process (cold word cache).  Also checks that both give the same ids.
#
#   make                                   # the library in core/.libs
#   mkdir -p /tmp/gpt3enc && (cd /tmp/gpt3enc && npm install gpt-3-encoder@1.1.4)
#   bench/bpe/run.sh [TEXT_FILE]
# GPT3_ENCODER_MODULES (default /tmp/gpt3enc/node_modules) says where the
# package is; without it only lmpipe's rows are printed.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
data=${LMPIPE_DATA_DIR:-$top/data}
mods=${GPT3_ENCODER_MODULES:-/tmp/gpt3enc/node_modules}
[ -f "$top/core/.libs/liblmpipe.so" ] || { echo "run.sh: build first (make)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# the shipped corpus is gzip-compressed: both tokenizers read the plain text
text=${1:-$data/corpus/state-of-the-union.txt}
if [ ! -r "$text" ] && [ -r "$text.gz" ]; then gzip -dc "$text.gz" > "$tmp/text.txt" && text=$tmp/text.txt; fi
cc -O2 -I"$top/core/base" -I"$top/core/nn" -I"$top/core/engine" -I"$top/core/kit" -I"$top" "$top/bench/bpe/bench_bpe.c" -L"$top/core/.libs" -llmpipe \
   -Wl,-rpath,"$top/core/.libs" -o "$tmp/bench_bpe"

# run NAME COMMAND...: 3 runs; each appends "load enc dec bytes tokens rss_kb" to $tmp/NAME
run() {
    name=$1; shift
    for i in 1 2 3; do
        /usr/bin/time -f "%M" -o "$tmp/rss" "$@" > "$tmp/line"
        echo "$(cut -d' ' -f1-5 < "$tmp/line") $(tail -n 1 "$tmp/rss")" >> "$tmp/$name"
    done
}
median() { # column of file -> median
    cut -d' ' -f"$2" "$1" | sort -g | sed -n 2p
}
row() {
    f=$tmp/$1
    awk -v name="$2" -v l="$(median "$f" 1)" -v e="$(median "$f" 2)" -v d="$(median "$f" 3)" \
        -v b="$(median "$f" 4)" -v n="$(median "$f" 5)" -v r="$(median "$f" 6)" 'BEGIN {
        printf "%-30s %10.1f %10.1f %8.3f %9.1f %9d\n", name, b / 1e6 / e, b / 1e6 / d, l, r / 1024, n }'
}

run lmpipe "$tmp/bench_bpe" "$data/gpt2" "$text" "$tmp/lmpipe.ids"
have_ref=no
if [ -d "$mods/gpt-3-encoder" ] && command -v node > /dev/null; then
    NODE_PATH=$mods run ref node "$top/bench/bpe/ref.js" "$text" "$tmp/ref.ids"
    have_ref=yes
fi

echo "text: $text ($(wc -c < "$text") bytes), one thread, median of 3 runs"
echo "$(uname -m), $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ *//')"
printf "%-30s %10s %10s %8s %9s %9s\n" tokenizer "encode MB/s" "decode MB/s" "load s" "peak MB" tokens
row lmpipe "lmpipe (C, PCRE2 JIT)"
if [ $have_ref = yes ]; then
    row ref "gpt-3-encoder (node $(node --version))"
    if cmp -s "$tmp/lmpipe.ids" "$tmp/ref.ids"; then echo "ids: identical"
    else echo "ids: DIFFERENT"; exit 1; fi
else
    echo "(reference not run: no $mods/gpt-3-encoder)"
fi
