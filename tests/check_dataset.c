/*
 * check_dataset.c — the dataset type: building, deep copy, content digest,
 * save/load round trips (plain and tokenized), every load error including
 * each truncation and each flipped byte of a saved file, and the CoLA TSV
 * reader with each malformed-row message.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"
#include "dataset.h"
#include "types.h"
#include "util.h"
#include "testutil.h"

static char tmpdir[64];

static void setup(void)
{
    strcpy(tmpdir, "/tmp/lmp_datasetXXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
    char *cmd = lmp_strfmt("rm -rf %s", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
    free(cmd);
}

static char *tmpfile_with(const char *name, const char *data, size_t len)
{
    char *p = lmp_strfmt("%s/%s", tmpdir, name);
    ck_assert_int_eq(lmp_write_file_atomic(p, data, len), 0);
    return p;
}

/* A plain write: the loops below write hundreds of variants, and fsync is slow. */
static void put_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

static lmp_dataset *sample(int tokenized)
{
    lmp_dataset *d = lmp_dataset_new("toy", 2);
    free(d->label_names[0]);
    d->label_names[0] = strdupCheck("no");
    lmp_split *s = lmp_dataset_add_split(d, "train");
    lmp_split_add(s, "a b c", 1, "src1");
    lmp_split_add(s, "d", 0, NULL);
    lmp_split_add(s, "Émile \"quoted\"", 1, "src3");
    s = lmp_dataset_add_split(d, "dev");
    lmp_split_add(s, "x y", 0, "s");
    lmp_dataset_add_split(d, "empty");
    if (tokenized) { /* 2: long rows were cut at the start (truncation=left) */
        d->tokenized = 1;
        d->truncate_left = tokenized == 2;
        d->vocab_size = 10;
        d->pad_id = 0;
        d->max_len = 3;
        memset(d->tokenizer_digest, 'a', 64);
        for (int k = 0; k < d->nsplits; k++) {
            lmp_split *sp = &d->splits[k];
            sp->ids = callocCheck((size_t)sp->n + 1, sizeof *sp->ids);
            sp->len = callocCheck((size_t)sp->n + 1, sizeof *sp->len);
            for (int i = 0; i < sp->n; i++) {
                sp->len[i] = 1 + i % 3;
                sp->ids[i] = mallocCheck(3 * sizeof(int));
                for (int j = 0; j < sp->len[i]; j++) sp->ids[i][j] = 1 + (i + j) % 9;
            }
        }
    }
    lmp_dataset_update_digest(d);
    return d;
}

/* Same content, field by field. */
static void assert_same(const lmp_dataset *a, const lmp_dataset *b)
{
    ck_assert_str_eq(a->name, b->name);
    ck_assert_int_eq(a->num_labels, b->num_labels);
    for (int i = 0; i < a->num_labels; i++) ck_assert_str_eq(a->label_names[i], b->label_names[i]);
    ck_assert_int_eq(a->nsplits, b->nsplits);
    ck_assert_int_eq(a->tokenized, b->tokenized);
    ck_assert_str_eq(a->digest, b->digest);
    if (a->tokenized) {
        ck_assert_str_eq(a->tokenizer_digest, b->tokenizer_digest);
        ck_assert_int_eq(a->vocab_size, b->vocab_size);
        ck_assert_int_eq(a->pad_id, b->pad_id);
        ck_assert_int_eq(a->max_len, b->max_len);
        ck_assert_int_eq(a->truncate_left, b->truncate_left);
    }
    for (int k = 0; k < a->nsplits; k++) {
        const lmp_split *s = &a->splits[k], *t = &b->splits[k];
        ck_assert_str_eq(s->name, t->name);
        ck_assert_int_eq(s->n, t->n);
        for (int i = 0; i < s->n; i++) {
            ck_assert_str_eq(s->text[i], t->text[i]);
            ck_assert_int_eq(s->label[i], t->label[i]);
            if (s->source[i]) ck_assert_str_eq(s->source[i], t->source[i]);
            else ck_assert_ptr_null(t->source[i]);
            if (a->tokenized) {
                ck_assert_int_eq(s->len[i], t->len[i]);
                ck_assert_int_eq(memcmp(s->ids[i], t->ids[i], (size_t)s->len[i] * sizeof(int)), 0);
            }
        }
    }
}

START_TEST(build_copy_digest)
{
    lmp_dataset *d = sample(0);
    ck_assert_int_eq(strlen(d->digest), 64);
    ck_assert_ptr_nonnull(lmp_dataset_split(d, "dev"));
    ck_assert_ptr_null(lmp_dataset_split(d, "test"));
    ck_assert_str_eq(d->label_names[1], "1"); /* default names are the indices */
    char before[65];
    strcpy(before, d->digest);
    lmp_dataset_update_digest(d);
    ck_assert_str_eq(d->digest, before); /* deterministic */

    lmp_dataset *c = lmp_dataset_copy(d);
    assert_same(d, c);
    c->splits[0].text[0][0] = 'Z'; /* deep: the original is untouched */
    ck_assert_str_eq(d->splits[0].text[0], "a b c");
    lmp_dataset_update_digest(c);
    ck_assert_str_ne(c->digest, before);
    /* a copy still grows */
    for (int i = 0; i < 100; i++) lmp_split_add(&c->splits[1], "more", i % 2, NULL);
    ck_assert_int_eq(c->splits[1].n, 101);
    ck_assert_str_eq(c->splits[1].text[100], "more");

    /* every part of the content moves the digest */
    c = (lmp_dataset_free(c), lmp_dataset_copy(d));
    c->splits[1].label[0] = 1;
    lmp_dataset_update_digest(c);
    ck_assert_str_ne(c->digest, before);
    c = (lmp_dataset_free(c), lmp_dataset_copy(d));
    free(c->label_names[1]);
    c->label_names[1] = strdupCheck("yes");
    lmp_dataset_update_digest(c);
    ck_assert_str_ne(c->digest, before);
    lmp_dataset_free(c);
    /* ids too */
    lmp_dataset *t = sample(1), *t2 = lmp_dataset_copy(t);
    assert_same(t, t2);
    ck_assert_str_ne(t->digest, before);
    t2->splits[0].ids[2][0] = 9;
    lmp_dataset_update_digest(t2);
    ck_assert_str_ne(t2->digest, t->digest);
    lmp_dataset_free(t2);
    lmp_dataset_free(t);
    lmp_dataset_free(d);
}
END_TEST

START_TEST(save_load_roundtrip)
{
    lmp_types_init();
    const lmp_type *ty = lmp_type_find("dataset");
    ck_assert_ptr_nonnull(ty);
    ck_assert_ptr_eq(ty, &lmp_type_dataset);
    char digest[3][65];
    for (int tok = 0; tok < 3; tok++) {
        lmp_dataset *d = sample(tok);
        strcpy(digest[tok], d->digest);
        char *p = lmp_strfmt("%s/d%d.bin", tmpdir, tok);
        ck_assert_msg(ty->save(d, p) == 0, "%s", lmp_errmsg());
        void *v;
        ck_assert_msg(ty->load(p, &v) == 0, "%s", lmp_errmsg());
        assert_same(d, v);
        /* saving again gives the same bytes */
        char *p2 = lmp_strfmt("%s/again.bin", tmpdir), h1[65], h2[65];
        ck_assert_int_eq(ty->save(v, p2), 0);
        ck_assert_int_eq(lmp_sha256_file(p, h1, NULL), 0);
        ck_assert_int_eq(lmp_sha256_file(p2, h2, NULL), 0);
        ck_assert_str_eq(h1, h2);
        ty->free(v);
        lmp_dataset_free(d);
        free(p);
        free(p2);
    }
    /* the cut side is content: same ids, another digest */
    ck_assert_str_ne(digest[2], digest[1]);
}
END_TEST

/* Rows cut to a shorter length lose the end the tokenizer cut: with
 * truncation=left the last tokens reach the model. */
START_TEST(batch_cut_side)
{
    for (int left = 0; left < 2; left++) {
        lmp_dataset *d = sample(left ? 2 : 1);
        const lmp_split *s = &d->splits[0]; /* rows [1], [2 3], [3 4 5] */
        int idx[3] = { 2, 0, 1 };
        lmp_batch b = { 0 };
        lmp_batch_fill(&b, d, s, idx, 3, 0, 2); /* dynamic padding, at most 2 tokens */
        ck_assert_int_eq(b.T, 2);
        int want_r[3][2] = { { 3, 4 }, { 1, 0 }, { 2, 3 } }, want_l[3][2] = { { 4, 5 }, { 1, 0 }, { 2, 3 } };
        for (int i = 0; i < 3; i++)
            for (int t = 0; t < 2; t++)
                ck_assert_int_eq(b.ids[i * 2 + t], left ? want_l[i][t] : want_r[i][t]);
        ck_assert_int_eq(b.len[0], 2);
        ck_assert_int_eq(b.len[1], 1);
        ck_assert_int_eq(lmp_batch_count_cut(s, 2), 1);
        ck_assert_int_eq(lmp_batch_count_cut(s, 0), 0);
        lmp_batch_fill(&b, d, s, idx, 1, 2, 0); /* padding=fixed to 2 cuts the same end */
        ck_assert_int_eq(b.ids[0], left ? 4 : 3);
        ck_assert_int_eq(b.ids[1], left ? 5 : 4);
        lmp_batch_free(&b);
        lmp_dataset_free(d);
    }
}
END_TEST

static void expect_load_error(const char *path, const char *want)
{
    void *v = (void *)1;
    ck_assert_int_eq(lmp_dataset_load(path, &v), -1);
    ck_assert_ptr_null(v);
    ck_assert_str_eq(lmp_errmsg(), want);
}

START_TEST(load_errors)
{
    lmp_dataset *d = sample(1);
    char *good = lmp_strfmt("%s/good.bin", tmpdir);
    ck_assert_int_eq(lmp_dataset_save(d, good), 0);
    char *data;
    size_t n;
    ck_assert_int_eq(lmp_read_file(good, 0, &data, &n), 0);
    char *p = lmp_strfmt("%s/bad.bin", tmpdir), *want;

    want = lmp_strfmt("%s/none.bin: No such file or directory", tmpdir);
    char *none = lmp_strfmt("%s/none.bin", tmpdir);
    expect_load_error(none, want);
    free(want), free(none);

    ck_assert_int_eq(lmp_write_file_atomic(p, "LMPDSET", 7), 0);
    want = lmp_strfmt("%s: not an lmpipe dataset file (bad magic)", p);
    expect_load_error(p, want);
    free(want);

    char *copy = mallocCheck(n);
    memcpy(copy, data, n);
    copy[8] = 2;
    ck_assert_int_eq(lmp_write_file_atomic(p, copy, n), 0);
    want = lmp_strfmt("%s: dataset format version 2, but this lmpipe reads version 1", p);
    expect_load_error(p, want);
    free(want);

    /* every truncation fails cleanly */
    for (size_t k = 8; k < n; k++) {
        put_file(p, data, k);
        void *v;
        ck_assert_msg(lmp_dataset_load(p, &v) == -1, "truncated to %zu bytes but loaded", k);
        ck_assert_msg(strncmp(lmp_errmsg(), p, strlen(p)) == 0, "error does not name the file: %s", lmp_errmsg());
    }
    ck_assert_int_eq(lmp_write_file_atomic(p, data, 14), 0);
    want = lmp_strfmt("%s: truncated dataset file (at byte 12, reading dataset name)", p);
    expect_load_error(p, want);
    free(want);

    /* every flipped byte fails cleanly */
    for (size_t k = 0; k < n; k++) {
        memcpy(copy, data, n);
        copy[k] ^= 0x5a;
        put_file(p, copy, n);
        void *v;
        ck_assert_msg(lmp_dataset_load(p, &v) == -1, "byte %zu flipped but loaded", k);
    }
    /* a text byte changed: the digest catches it */
    memcpy(copy, data, n);
    char *at = memmem(copy, n, "a b c", 5);
    ck_assert_ptr_nonnull(at);
    at[0] = 'q';
    ck_assert_int_eq(lmp_write_file_atomic(p, copy, n), 0);
    want = lmp_strfmt("%s: content does not match its digest (corrupted file)", p);
    expect_load_error(p, want);
    free(want);
    /* invalid UTF-8 in a text */
    at[0] = (char)0xff;
    ck_assert_int_eq(lmp_write_file_atomic(p, copy, n), 0);
    want = lmp_strfmt("%s: text is not valid UTF-8 text (at byte %zu)", p, (size_t)(at - copy) - 4);
    expect_load_error(p, want);
    free(want);
    /* trailing garbage */
    char *longer = mallocCheck(n + 3);
    memcpy(longer, data, n);
    memcpy(longer + n, "xyz", 3);
    ck_assert_int_eq(lmp_write_file_atomic(p, longer, n + 3), 0);
    want = lmp_strfmt("%s: 3 unexpected bytes after the end of the dataset", p);
    expect_load_error(p, want);
    free(want);
    free(longer);

    /* content the format can hold but the type forbids */
    lmp_dataset *e = sample(0);
    e->splits[1].label[0] = 5;
    ck_assert_int_eq(lmp_dataset_save(e, p), 0);
    want = lmp_strfmt("%s: split 'dev' example 0: label 5 out of range [0, 2)", p);
    expect_load_error(p, want);
    free(want);
    lmp_dataset_free(e);
    e = sample(1);
    e->splits[0].ids[1][0] = 10;
    ck_assert_int_eq(lmp_dataset_save(e, p), 0);
    want = lmp_strfmt("%s: split 'train' example 1: token id 10 out of range [0, 10)", p);
    expect_load_error(p, want);
    free(want);
    e->splits[0].ids[1][0] = 1;
    e->max_len = 1;
    ck_assert_int_eq(lmp_dataset_save(e, p), 0);
    want = lmp_strfmt("%s: split 'train' example 1: bad token count 2", p);
    expect_load_error(p, want);
    free(want);
    for (int i = 0; i < e->splits[0].n; i++) free(e->splits[0].ids[i]);
    free(e->splits[0].ids);
    e->splits[0].ids = NULL;
    ck_assert_int_eq(lmp_dataset_save(e, p), -1);
    want = lmp_strfmt("%s: dataset 'toy' is marked tokenized but split 'train' has no ids", p);
    ck_assert_str_eq(lmp_errmsg(), want);
    free(want);
    lmp_dataset_free(e);

    free(copy);
    free(data);
    free(p);
    free(good);
    lmp_dataset_free(d);
}
END_TEST

/* ---------------------------------------------------------------- CoLA */

START_TEST(cola_fixture)
{
    const char *top = getenv("top_srcdir");
    char *dir = lmp_strfmt("%s/tests/fixtures/cola-mini", top ? top : ".");
    lmp_dataset *d = lmp_dataset_new("cola", 2);
    lmp_split *s = lmp_dataset_add_split(d, "dev");
    char *p = lmp_strfmt("%s/in_domain_dev.tsv", dir);
    ck_assert_msg(lmp_cola_read(p, s) == 0, "%s", lmp_errmsg());
    ck_assert_int_eq(s->n, 8);
    ck_assert_str_eq(s->text[0], "The cat sat.");
    ck_assert_str_eq(s->source[0], "a");
    ck_assert_int_eq(s->label[2], 0); /* label column, not the '*' mark */
    ck_assert_str_eq(s->text[7], "Susan whispered \"Shut up\".");
    ck_assert_ptr_null(s->ids);
    free(p);
    /* CRLF line ends */
    s = lmp_dataset_add_split(d, "train");
    p = lmp_strfmt("%s/in_domain_train.tsv", dir);
    ck_assert_int_eq(lmp_cola_read(p, s), 0);
    ck_assert_int_eq(s->n, 4);
    ck_assert_str_eq(s->text[0], "A dog barked.");
    ck_assert_str_eq(s->text[3], "We saw them.");
    free(p);
    /* no final newline, UTF-8 */
    s = lmp_dataset_add_split(d, "ood");
    p = lmp_strfmt("%s/out_of_domain_dev.tsv", dir);
    ck_assert_int_eq(lmp_cola_read(p, s), 0);
    ck_assert_int_eq(s->n, 3);
    ck_assert_str_eq(s->text[2], "Émile reads.");
    ck_assert_int_eq(s->label[1], 0);
    /* reading appends */
    ck_assert_int_eq(lmp_cola_read(p, s), 0);
    ck_assert_int_eq(s->n, 6);
    free(p);
    free(dir);
    lmp_dataset_free(d);
}
END_TEST

static void expect_cola_error(const char *text, size_t len, const char *want_fmt)
{
    char *p = tmpfile_with("bad.tsv", text, len);
    lmp_dataset *d = lmp_dataset_new("cola", 2);
    lmp_split *s = lmp_dataset_add_split(d, "x");
    lmp_split_add(s, "kept", 1, NULL);
    ck_assert_int_eq(lmp_cola_read(p, s), -1);
    char *want = lmp_strfmt(want_fmt, p);
    ck_assert_str_eq(lmp_errmsg(), want);
    ck_assert_int_eq(s->n, 1); /* the whole file is rejected */
    free(want);
    free(p);
    lmp_dataset_free(d);
}

#define BAD(text, want) expect_cola_error(text, sizeof(text) - 1, want)

START_TEST(cola_errors)
{
    BAD("a\t1\t\tfine\na\t1\tthree columns\n", "%s:2: expected 4 tab-separated columns, found 3");
    BAD("a\t1\t\tfine\ta fifth\n", "%s:1: expected 4 tab-separated columns, found 5");
    BAD("a\t1\t\tfine\n\na\t1\t\tfine\n", "%s:2: expected 4 tab-separated columns, found 1");
    BAD("a\t1\t\tfine\n\n", "%s:2: expected 4 tab-separated columns, found 1");
    BAD("a\t2\t\tbad label\n", "%s:1: label '2' is not 0 or 1");
    BAD("a\t\t\tno label\n", "%s:1: label '' is not 0 or 1");
    BAD("a\t10\t\ttwo digits\n", "%s:1: label '10' is not 0 or 1");
    BAD("a\t1 \t\tspace\n", "%s:1: label '1 ' is not 0 or 1");
    BAD("a\tacceptable-but-very-long\t\tx\n", "%s:1: label column (24 bytes) is not 0 or 1");
    BAD("a\t1\t\t\n", "%s:1: empty sentence");
    BAD("a\t1\t\t   \r\n", "%s:1: empty sentence");
    BAD("a\t1\t\tok\na\t1\t\tok\na\t0\t*\tbad \xff byte\n", "%s:3: invalid UTF-8 at column 11");
    BAD("a\t1\t\tover\xc0\xaflong\n", "%s:1: invalid UTF-8 at column 10");
    BAD("a\t1\t\tnul\0byte\n", "%s:1: NUL byte at column 9");
    BAD("", "%s: empty file (no rows)");
    char *want = lmp_strfmt("%s/missing.tsv: No such file or directory", tmpdir);
    char *p = lmp_strfmt("%s/missing.tsv", tmpdir);
    lmp_split s = {0};
    ck_assert_int_eq(lmp_cola_read(p, &s), -1);
    ck_assert_str_eq(lmp_errmsg(), want);
    free(want);
    free(p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dataset");
    TCase *tc = tcase_create("dataset");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, build_copy_digest);
    tcase_add_test(tc, save_load_roundtrip);
    tcase_add_test(tc, batch_cut_side);
    tcase_add_test(tc, load_errors);
    tcase_add_test(tc, cola_fixture);
    tcase_add_test(tc, cola_errors);
    suite_add_tcase(s, tc);
    int failed = test_run_suite(s, 0);
    return failed ? 1 : 0;
}
