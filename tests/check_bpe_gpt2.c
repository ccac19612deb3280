/* check_bpe_gpt2.c — GPT-2's own vocabulary ($LMPIPE_DATA_DIR/gpt2): ids identical
 * to an independent tokenizer (fixtures from gpt-3-encoder, confirmed by
 * cross_check.py) on the test corpus and on every CoLA dev sentence, both
 * file layouts, the special token, Unicode whitespace, long and invalid
 * input, and `lmpipe tokenize` with its default folder.  Skips (77) without
 * the data. */
#include "config.h"
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpe.h"
#include "cli_tokenize.h"
#include "util.h"
#include "testutil.h"

static char *data_dir, *gpt2_dir;
static lmp_bpe *gpt2;

static const char *const CORPUS[] = { "code", "control", "edge", "numbers", "prose",
                                      "unicode", "whitespace" };

static char *fixture(const char *rel) { return test_fixture("bpe", rel); }

static void setup(void)
{
    ck_assert_msg(lmp_bpe_load_dir(gpt2_dir, &gpt2) == 0, "%s", lmp_errmsg());
}

static void teardown(void) { lmp_bpe_free(gpt2); }

/* Parse a line of decimals. */
static int *parse_ids(const char *s, size_t *n)
{
    size_t cap = 16;
    int *ids = mallocCheck(cap * sizeof *ids);
    *n = 0;
    for (char *end; *s && *s != '\n';) {
        long v = strtol(s, &end, 10);
        ck_assert_ptr_ne(end, s);
        if (*n == cap) ids = reallocCheck(ids, (cap *= 2) * sizeof *ids);
        ids[(*n)++] = (int)v;
        s = end;
        while (*s == ' ') s++;
    }
    return ids;
}

static void assert_ids(const char *what, const int *got, size_t ng, const int *want, size_t nw)
{
    size_t i = 0;
    while (i < ng && i < nw && got[i] == want[i]) i++;
    ck_assert_msg(i == ng && i == nw, "%s: ids differ at %zu: got %d, want %d (%zu vs %zu ids)",
                  what, i, i < ng ? got[i] : -1, i < nw ? want[i] : -1, ng, nw);
}

static void assert_encodes(const char *text, size_t len, int flags, const int *want, size_t nw)
{
    int *ids;
    size_t n, dl;
    char *back;
    ck_assert_int_eq(lmp_bpe_encode(gpt2, text, len, flags, &ids, &n), 0);
    assert_ids(text, ids, n, want, nw);
    ck_assert_int_eq(lmp_bpe_decode(gpt2, ids, n, &back, &dl), 0);
    ck_assert_uint_eq(dl, len);
    ck_assert(memcmp(back, text, len) == 0);
    free(back);
    free(ids);
}

START_TEST(vocabulary)
{
    ck_assert_int_eq(lmp_bpe_vocab_size(gpt2), 50257);
    ck_assert_int_eq(lmp_bpe_eot(gpt2), 50256);
    ck_assert_int_eq(lmp_bpe_is_ordered(gpt2), 1);
    size_t len;
    const char *t = lmp_bpe_token(gpt2, 198, &len);
    ck_assert(len == 1 && t[0] == '\n');
    t = lmp_bpe_token(gpt2, 995, &len);
    ck_assert(len == 6 && memcmp(t, " world", 6) == 0);
    t = lmp_bpe_token(gpt2, 50256, &len);
    ck_assert(len == 13 && memcmp(t, "<|endoftext|>", 13) == 0);
}
END_TEST

START_TEST(corpus_parity)
{
    for (size_t i = 0; i < sizeof CORPUS / sizeof *CORPUS; i++) {
        char *tr = lmp_strfmt("corpus/%s.txt", CORPUS[i]), *ir = lmp_strfmt("corpus/%s.ids", CORPUS[i]);
        char *tp = fixture(tr), *ip = fixture(ir), *text, *idtext;
        size_t len, il, nw;
        ck_assert_msg(lmp_read_file(tp, 0, &text, &len) == 0, "%s", lmp_errmsg());
        ck_assert_msg(lmp_read_file(ip, 0, &idtext, &il) == 0, "%s", lmp_errmsg());
        int *want = parse_ids(idtext, &nw);
        ck_assert_uint_gt(nw, 100);
        assert_encodes(text, len, 0, want, nw);
        /* none of them has a special token in it except as text */
        if (!strstr(text, "<|endoftext|>")) assert_encodes(text, len, LMP_BPE_SPECIAL, want, nw);
        free(want);
        free(text), free(idtext), free(tp), free(ip), free(tr), free(ir);
    }
}
END_TEST

START_TEST(cola_dev_parity)
{
    char *tsv = lmp_strfmt("%s/cola/in_domain_dev.tsv", data_dir), *ip = fixture("cola_in_domain_dev.ids");
    char *text, *idtext;
    size_t len, il;
    ck_assert_msg(lmp_read_file(tsv, 0, &text, &len) == 0, "%s", lmp_errmsg());
    ck_assert_msg(lmp_read_file(ip, 0, &idtext, &il) == 0, "%s", lmp_errmsg());
    int rows = 0;
    char *idline = idtext;
    for (char *line = text; *line; rows++) {
        char *nl = strchr(line, '\n');
        ck_assert_ptr_nonnull(nl);
        *nl = 0;
        char *sent = line;
        for (int c = 0; c < 3; c++) {
            sent = strchr(sent, '\t');
            ck_assert_ptr_nonnull(sent);
            sent++;
        }
        size_t nw;
        int *want = parse_ids(idline, &nw);
        assert_encodes(sent, strlen(sent), 0, want, nw);
        free(want);
        idline = strchr(idline, '\n');
        ck_assert_ptr_nonnull(idline);
        idline++;
        line = nl + 1;
    }
    ck_assert_int_eq(rows, 527);
    ck_assert_str_eq(idline, "");
    free(text), free(idtext), free(tsv), free(ip);
}
END_TEST

START_TEST(huggingface_layout)
{
    char dir[] = "/tmp/lmp_bpe_hfXXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char *v = lmp_strfmt("%s/vocab.json", dir), *m = lmp_strfmt("%s/merges.txt", dir);
    char *e = lmp_strfmt("%s/encoder.json", gpt2_dir), *b = lmp_strfmt("%s/vocab.bpe", gpt2_dir);
    ck_assert_int_eq(symlink(e, v), 0);
    ck_assert_int_eq(symlink(b, m), 0);
    lmp_bpe *hf;
    ck_assert_msg(lmp_bpe_load_dir(dir, &hf) == 0, "%s", lmp_errmsg());
    ck_assert_int_eq(lmp_bpe_vocab_size(hf), 50257);
    const char *t = "Hello world, it's a test's 'S thing.";
    int *a, *c;
    size_t na, nc;
    ck_assert_int_eq(lmp_bpe_encode(hf, t, strlen(t), 0, &a, &na), 0);
    ck_assert_int_eq(lmp_bpe_encode(gpt2, t, strlen(t), 0, &c, &nc), 0);
    static const int want[] = { 15496, 995, 11, 340, 338, 257, 1332, 338, 705, 50, 1517, 13 };
    assert_ids("hf", a, na, want, 12);
    assert_ids("openai", c, nc, want, 12);
    free(a), free(c);
    lmp_bpe_free(hf);
    unlink(v), unlink(m), rmdir(dir);
    free(v), free(m), free(e), free(b);
}
END_TEST

START_TEST(special_token)
{
    const char *t = "Hello<|endoftext|>World";
    static const int with[] = { 15496, 50256, 10603 };
    static const int without[] = { 15496, 27, 91, 437, 1659, 5239, 91, 29, 10603 };
    assert_encodes(t, strlen(t), LMP_BPE_SPECIAL, with, 3);
    assert_encodes(t, strlen(t), 0, without, 9);
    static const int only[] = { 50256, 50256 };
    assert_encodes("<|endoftext|><|endoftext|>", 26, LMP_BPE_SPECIAL, only, 2);
    /* the text before the token is a text of its own: its trailing space
     * stays a piece (as with tiktoken's allowed_special) */
    static const int sp[] = { 64, 220, 50256, 65 };
    assert_encodes("a <|endoftext|>b", 16, LMP_BPE_SPECIAL, sp, 4);
}
END_TEST

/* gpt-3-encoder's JavaScript \s differs from Python's on these two, so their
 * expected ids come from cross_check.py (the `regex` module, as encoder.py);
 * gpt-3-encoder gives 64 1587 227 65 ... and 87 220 171 119 123 ... */
START_TEST(unicode_whitespace)
{
    static const int nel[] = { 64, 220, 126, 227, 65, 126, 227, 126, 227, 269 }; /* U+0085 is \s */
    assert_encodes("a \xc2\x85" "b\xc2\x85\xc2\x85 c", 11, 0, nel, 10);
    static const int bom[] = { 87, 27332, 119, 123, 88, 171, 119, 123 };        /* U+FEFF is not */
    assert_encodes("x \xef\xbb\xbfy\xef\xbb\xbf", 9, 0, bom, 8);
}
END_TEST

START_TEST(long_and_invalid_input)
{
    size_t big = 1 << 20;
    char *s = mallocCheck(big);
    int *ids;
    size_t n, dl;
    char *back;
    const char *fills[] = { " ", "a", "\xff", "7", "\xf0\x9f\x98\x80", "\n\n ", "ab", "\xc3" };
    for (size_t f = 0; f < sizeof fills / sizeof *fills; f++) {
        size_t fl = strlen(fills[f]), len = big - big % fl;
        for (size_t i = 0; i < len; i += fl) memcpy(s + i, fills[f], fl);
        double t0 = lmp_now();
        ck_assert_msg(lmp_bpe_encode(gpt2, s, len, 0, &ids, &n) == 0, "%s", lmp_errmsg());
        ck_assert_msg(lmp_now() - t0 < 5, "fill %zu took %.1f s", f, lmp_now() - t0);
        ck_assert_int_eq(lmp_bpe_decode(gpt2, ids, n, &back, &dl), 0);
        ck_assert_uint_eq(dl, len);
        ck_assert(memcmp(back, s, len) == 0);
        free(ids);
        free(back);
    }
    /* random bytes */
    lmp_rng rng;
    lmp_rng_seed(&rng, 11);
    for (size_t i = 0; i < big; i++) s[i] = (char)(lmp_rng_u64(&rng) & 0xFF);
    ck_assert_int_eq(lmp_bpe_encode(gpt2, s, big, LMP_BPE_SPECIAL, &ids, &n), 0);
    ck_assert_int_eq(lmp_bpe_decode(gpt2, ids, n, &back, &dl), 0);
    ck_assert_uint_eq(dl, big);
    ck_assert(memcmp(back, s, big) == 0);
    free(ids);
    free(back);
    free(s);
}
END_TEST

/* `lmpipe tokenize` with no --vocab reads $LMPIPE_DATA_DIR/gpt2 */
START_TEST(cli_default_vocab)
{
    char *prose = fixture("corpus/prose.txt"), *want = fixture("corpus/prose.ids");
    char out[] = "/tmp/lmp_bpe_cliXXXXXX";
    int fd = mkstemp(out);
    ck_assert_int_ge(fd, 0);
    fflush(stdout);
    int saved = dup(1);
    dup2(fd, 1);
    char *argv[] = { "tokenize", prose, NULL };
    int rc = lmp_cli_tokenize(2, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    close(fd);
    ck_assert_int_eq(rc, 0);
    char *a, *b;
    size_t la, lb;
    ck_assert_int_eq(lmp_read_file(out, 0, &a, &la), 0);
    ck_assert_int_eq(lmp_read_file(want, 0, &b, &lb), 0);
    ck_assert_str_eq(a, b);
    unlink(out);
    free(a), free(b), free(prose), free(want);
}
END_TEST

int main(void)
{
    const char *d = getenv("LMPIPE_DATA_DIR");
    data_dir = lmp_strfmt("%s", d && *d ? d : LMP_SRCDIR "/data");
    gpt2_dir = lmp_strfmt("%s/gpt2", data_dir);
    char *need[] = { lmp_strfmt("%s/encoder.json", gpt2_dir), lmp_strfmt("%s/vocab.bpe", gpt2_dir),
                     lmp_strfmt("%s/cola/in_domain_dev.tsv", data_dir) };
    for (int i = 0; i < 3; i++)
        if (access(need[i], R_OK) != 0) {
            printf("check_bpe_gpt2: %s not found (set LMPIPE_DATA_DIR): skipped\n", need[i]);
            for (int k = 0; k < 3; k++) free(need[k]);
            return 77;
        }
    setenv("LMPIPE_DATA_DIR", data_dir, 1);
    Suite *s = suite_create("bpe_gpt2");
    TCase *tc = tcase_create("gpt2");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, vocabulary);
    tcase_add_test(tc, corpus_parity);
    tcase_add_test(tc, cola_dev_parity);
    tcase_add_test(tc, huggingface_layout);
    tcase_add_test(tc, special_token);
    tcase_add_test(tc, unicode_whitespace);
    tcase_add_test(tc, long_and_invalid_input);
    tcase_add_test(tc, cli_default_vocab);
    suite_add_tcase(s, tc);
    int failed = test_run_suite(s, 0);
    for (int i = 0; i < 3; i++) free(need[i]);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
