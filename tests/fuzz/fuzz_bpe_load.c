/*
 * fuzz_bpe_load.c — loading a vocabulary and its merges (core/nn/bpe.h
 * lmp_bpe_load) from arbitrary bytes: the input up to its first NUL byte is
 * vocab.json, the rest merges.txt.  Properties: no crash, leak or hang; a
 * rejected pair leaves a one-line message; an accepted vocabulary (ordered or
 * not) encodes any text, including the input itself, into ids that decode
 * back to exactly that text.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "bpe.h"
#include "fuzz.h"
#include "util.h"

static void round_trip(lmp_bpe *b, const char *text, size_t len, int flags)
{
    int *ids;
    size_t n;
    char *back;
    size_t blen;
    if (lmp_bpe_encode(b, text, len, flags, &ids, &n) != 0) fuzz_fail("bpe_load", "encode failed: %s", lmp_errmsg());
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= lmp_bpe_vocab_size(b)) fuzz_fail("bpe_load", "id %d out of range", ids[i]);
    if (lmp_bpe_decode(b, ids, n, &back, &blen) != 0) fuzz_fail("bpe_load", "decode failed: %s", lmp_errmsg());
    if (blen != len || memcmp(back, text, len) != 0)
        fuzz_fail("bpe_load", "decode(encode(x)) != x for %zu bytes (got %zu)", len, blen);
    free(back);
    free(ids);
}

int fuzz_bpe_load(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t vlen = nul ? (size_t)(nul - data) : size;
    const char *vocab = fuzz_file("vocab.json", data, vlen);
    const char *merges = fuzz_file("merges.txt", nul ? nul + 1 : data + size, nul ? size - vlen - 1 : 0);
    lmp_bpe *b;
    fuzz_clear_error();
    if (lmp_bpe_load(vocab, merges, &b) != 0) {
        fuzz_check_errmsg("bpe_load");
        return 0;
    }
    for (int id = 0; id < lmp_bpe_vocab_size(b); id++) {
        size_t len;
        if (!lmp_bpe_token(b, id, &len) || len == 0) fuzz_fail("bpe_load", "token %d has no bytes", id);
    }
    static const char sample[] = "Hello world, it's 2024!  <|endoftext|>\xff\xfe caf\xc3\xa9 \t\n";
    round_trip(b, sample, sizeof sample - 1, 0);
    round_trip(b, sample, sizeof sample - 1, LMP_BPE_SPECIAL);
    round_trip(b, (const char *)data, size, 0);
    lmp_bpe_set_cache(b, 0); /* the uncached path gives the same ids */
    round_trip(b, (const char *)data, size, LMP_BPE_SPECIAL);
    lmp_bpe_free(b);
    return 0;
}
LMP_FUZZ_ENTRY(fuzz_bpe_load)
