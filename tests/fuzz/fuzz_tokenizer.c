/*
 * fuzz_tokenizer.c — GPT-2's tokenizer (core/nn/bpe.h, the shipped
 * data/gpt2 vocabulary) on arbitrary bytes: invalid UTF-8, NULs, huge
 * whitespace runs, "<|endoftext|>" inside text.  Property: encoding never
 * fails, every id is in the vocabulary, and decoding gives back exactly the
 * input bytes — with and without the special token, cached and not, and
 * when the text arrives split in two documents (encode_append); and fed
 * in chunks to the streaming encoder, the ids of one encode.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "bpe.h"
#include "fuzz.h"
#include "util.h"

static lmp_bpe *gpt2, *gpt2_nocache;

static void check(lmp_bpe *b, const char *text, size_t len, int flags)
{
    int *ids;
    size_t n;
    char *back;
    size_t blen;
    if (lmp_bpe_encode(b, text, len, flags, &ids, &n) != 0) fuzz_fail("tokenizer", "encode failed: %s", lmp_errmsg());
    if (n > len) fuzz_fail("tokenizer", "%zu ids for %zu bytes", n, len);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= lmp_bpe_vocab_size(b)) fuzz_fail("tokenizer", "id %d out of range", ids[i]);
    if (lmp_bpe_decode(b, ids, n, &back, &blen) != 0) fuzz_fail("tokenizer", "decode failed: %s", lmp_errmsg());
    if (blen != len || memcmp(back, text, len) != 0)
        fuzz_fail("tokenizer", "decode(encode(x)) != x (flags %d, %zu bytes in, %zu out)", flags, len, blen);
    free(back);
    free(ids);
}

int fuzz_tokenizer(const uint8_t *data, size_t size)
{
    if (!gpt2) {
        if (lmp_bpe_load(fuzz_srcfile("data/gpt2/encoder.json"), fuzz_srcfile("data/gpt2/vocab.bpe"), &gpt2) != 0 ||
            lmp_bpe_load(fuzz_srcfile("data/gpt2/encoder.json"), fuzz_srcfile("data/gpt2/vocab.bpe"), &gpt2_nocache) != 0)
            fuzz_fail("tokenizer", "cannot load the GPT-2 vocabulary: %s", lmp_errmsg());
        lmp_bpe_set_cache(gpt2_nocache, 0);
    }
    const char *text = (const char *)data;
    check(gpt2, text, size, 0);
    check(gpt2, text, size, LMP_BPE_SPECIAL);
    check(gpt2_nocache, text, size, 0);
    /* two documents appended: the ids of each, concatenated */
    size_t cut = size / 2;
    int *ids = NULL;
    size_t n = 0, cap = 0;
    if (lmp_bpe_encode_append(gpt2, text, cut, 0, &ids, &n, &cap) != 0 ||
        lmp_bpe_encode_append(gpt2, text + cut, size - cut, 0, &ids, &n, &cap) != 0)
        fuzz_fail("tokenizer", "encode_append failed: %s", lmp_errmsg());
    char *back;
    size_t blen;
    if (lmp_bpe_decode(gpt2, ids, n, &back, &blen) != 0 || blen != size || memcmp(back, text, size) != 0)
        fuzz_fail("tokenizer", "two appended documents do not decode to the text");
    free(back);
    free(ids);
    /* the cache never changes ids */
    int *a, *b;
    size_t na, nb;
    if (lmp_bpe_encode(gpt2, text, size, 0, &a, &na) != 0 || lmp_bpe_encode(gpt2_nocache, text, size, 0, &b, &nb) != 0)
        fuzz_fail("tokenizer", "encode failed: %s", lmp_errmsg());
    if (na != nb || memcmp(a, b, na * sizeof *a) != 0) fuzz_fail("tokenizer", "cached and uncached ids differ");
    /* streamed in chunks of 1 + the first byte % 32 bytes: the same ids */
    size_t chunk = size ? 1 + data[0] % 32 : 1, start = 0, have = 0, used;
    int flags = size > 1 && (data[1] & 1) ? LMP_BPE_SPECIAL : 0;
    ids = NULL, n = 0, cap = 0;
    for (int final = 0; !final;) {
        have += size - start - have < chunk ? size - start - have : chunk;
        final = start + have == size;
        if (lmp_bpe_encode_stream(gpt2, text + start, have, final, flags, &ids, &n, &cap, &used) != 0)
            fuzz_fail("tokenizer", "encode_stream failed: %s", lmp_errmsg());
        start += used;
        have -= used;
    }
    free(a);
    if (lmp_bpe_encode(gpt2, text, size, flags, &a, &na) != 0) fuzz_fail("tokenizer", "encode failed: %s", lmp_errmsg());
    if (have || na != n || (na && memcmp(a, ids, na * sizeof *a) != 0))
        fuzz_fail("tokenizer", "streamed in chunks of %zu (flags %d): other ids than one encode", chunk, flags);
    free(ids);
    free(a);
    free(b);
    return 0;
}
LMP_FUZZ_ENTRY(fuzz_tokenizer)
