# tests/lib.sh — helpers for the shell tests: a scratch directory, the lmpipe
# binary of this build, and assertions that print what differed.
set -u
: "${top_builddir:?run through make check}"
: "${top_srcdir:?run through make check}"
LMPIPE="$top_builddir/core/lmpipe"
TESTPLUG="$top_builddir/tests/plugins/.libs"
T=$(mktemp -d /tmp/lmp_test.XXXXXX)
trap 'rm -rf "$T"' EXIT
export LMPIPE_DB="$T/test.db"
failures=0
checks=0

fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# expect_exit CODE CMD... : run CMD, capture stdout/stderr in $T/out, $T/err
expect_exit() {
    want=$1; shift
    checks=$((checks + 1))
    "$@" >"$T/out" 2>"$T/err"
    got=$?
    [ "$got" = "$want" ] || { fail "exit $got, wanted $want: $*"; sed 's/^/  stderr: /' "$T/err" >&2; }
}

# expect_err TEXT : the last command's stderr contains TEXT (fixed string)
expect_err() {
    checks=$((checks + 1))
    grep -qF -- "$1" "$T/err" || { fail "stderr lacks: $1"; sed 's/^/  stderr: /' "$T/err" >&2; }
}

# expect_out TEXT : the last command's stdout contains TEXT
expect_out() {
    checks=$((checks + 1))
    grep -qF -- "$1" "$T/out" || { fail "stdout lacks: $1"; sed 's/^/  stdout: /' "$T/out" >&2; }
}

# expect_eq GOT WANT WHAT
expect_eq() {
    checks=$((checks + 1))
    [ "$1" = "$2" ] || fail "$3: got '$1', wanted '$2'"
}

# corpus_slice NAME BYTES : the first BYTES bytes of corpus text NAME
# (moby-dick.txt, ...) from the data folder, decompressed when it ships as
# NAME.gz; status 1 when the data folder has neither.
corpus_slice() {
    _c="${LMPIPE_DATA_DIR:-$top_srcdir/data}/corpus/$1"
    if [ -r "$_c" ]; then head -c "$2" "$_c"
    elif [ -r "$_c.gz" ]; then gzip -dc "$_c.gz" | head -c "$2"
    else echo "corpus_slice: $_c(.gz) missing" >&2; return 1
    fi
}

finish() {
    echo "$checks checks, $failures failed"
    [ "$failures" = 0 ]
    exit $?
}
