/*
 * dataset.c — the "dataset" artifact type (see dataset.h): building, copying,
 * hashing, saving and loading labelled text datasets, and the CoLA TSV reader.
 *
 * File format (version 1), all integers little-endian:
 *
 *     "LMPDSET\n"  u32 version
 *     str name, u32 num_labels, str label_names[num_labels]
 *     u32 tokenized, str tokenizer_digest, i32 vocab_size, i32 pad_id, i32 max_len
 *     u32 nsplits, then per split:
 *         str name, u32 n, then per example:
 *             str text, i32 label, str source (length 0xFFFFFFFF = NULL),
 *             if tokenized: u32 len, i32 ids[len]
 *     str digest
 *
 * where str is u32 length + bytes, and tokenized is 0 (no ids), 1 (ids, long
 * rows cut at the end) or 2 (ids, long rows cut at the start: truncate_left).
 * The cut side rides in that flag rather than in a field of its own so that
 * the files and digests of every right-cut dataset stay what they were.  Load checks every length against the
 * bytes left, every label and id against its range, and the stored digest
 * against one recomputed from the content, so a truncated or corrupted file
 * is an error naming the file, never a crash.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "util.h"

#define DS_MAGIC "LMPDSET\n"
#define DS_VERSION 1u
#define NULL_STR 0xFFFFFFFFu
/* Far beyond any text dataset we handle; keeps lmp_read_file bounded. */
#define DS_MAX_FILE ((size_t)1 << 32)

/* ------------------------------------------------------------ building */

/* Arrays grow to the next power of two, so the capacity follows from n. */
static size_t cap_for(size_t n)
{
    size_t c = 1;
    while (c < n) c <<= 1;
    return c;
}

lmp_dataset *lmp_dataset_new(const char *name, int num_labels)
{
    lmp_dataset *d = callocCheck(1, sizeof *d);
    d->name = strdupCheck(name);
    d->num_labels = num_labels;
    d->label_names = callocCheck(num_labels > 0 ? (size_t)num_labels : 1, sizeof *d->label_names);
    for (int i = 0; i < num_labels; i++) d->label_names[i] = lmp_strfmt("%d", i);
    return d;
}

lmp_split *lmp_dataset_split(lmp_dataset *d, const char *name)
{
    for (int i = 0; i < d->nsplits; i++)
        if (strcmp(d->splits[i].name, name) == 0) return &d->splits[i];
    return NULL;
}

/* The returned pointer is valid until the next lmp_dataset_add_split. */
lmp_split *lmp_dataset_add_split(lmp_dataset *d, const char *name)
{
    d->splits = reallocCheck(d->splits, (size_t)(d->nsplits + 1) * sizeof *d->splits);
    lmp_split *s = &d->splits[d->nsplits++];
    memset(s, 0, sizeof *s);
    s->name = strdupCheck(name);
    return s;
}

/* Adding examples is for readers, before tokenization: the ids arrays of a
 * tokenized split are sized by the tokenizer and would not grow. */
void lmp_split_add(lmp_split *s, const char *text, int label, const char *source)
{
    if (s->ids) {
        fprintf(stderr, "lmpipe: bug: lmp_split_add on tokenized split '%s'\n", s->name);
        abort();
    }
    size_t n = (size_t)s->n;
    if (n == 0 || (n & (n - 1)) == 0) {
        size_t cap = n ? 2 * n : 1;
        s->text = reallocCheck(s->text, cap * sizeof *s->text);
        s->label = reallocCheck(s->label, cap * sizeof *s->label);
        s->source = reallocCheck(s->source, cap * sizeof *s->source);
    }
    s->text[n] = strdupCheck(text);
    s->label[n] = label;
    s->source[n] = source ? strdupCheck(source) : NULL;
    s->n++;
}

static void split_free(lmp_split *s)
{
    for (int i = 0; i < s->n; i++) {
        free(s->text[i]);
        if (s->source) free(s->source[i]);
        if (s->ids) free(s->ids[i]);
    }
    free(s->name);
    free(s->text);
    free(s->label);
    free(s->source);
    free(s->ids);
    free(s->len);
}

void lmp_dataset_free(void *v)
{
    lmp_dataset *d = v;
    if (!d) return;
    for (int i = 0; i < d->nsplits; i++) split_free(&d->splits[i]);
    for (int i = 0; i < d->num_labels; i++) free(d->label_names[i]);
    free(d->label_names);
    free(d->splits);
    free(d->name);
    free(d);
}

static char *dup_or_null(const char *s) { return s ? strdupCheck(s) : NULL; }

lmp_dataset *lmp_dataset_copy(const lmp_dataset *d)
{
    lmp_dataset *c = mallocCheck(sizeof *c);
    *c = *d;
    c->name = strdupCheck(d->name);
    c->label_names = callocCheck(d->num_labels > 0 ? (size_t)d->num_labels : 1, sizeof *c->label_names);
    for (int i = 0; i < d->num_labels; i++) c->label_names[i] = dup_or_null(d->label_names[i]);
    c->splits = callocCheck(d->nsplits > 0 ? (size_t)d->nsplits : 1, sizeof *c->splits);
    for (int k = 0; k < d->nsplits; k++) {
        const lmp_split *s = &d->splits[k];
        lmp_split *t = &c->splits[k];
        size_t cap = cap_for((size_t)s->n);
        t->name = strdupCheck(s->name);
        t->n = s->n;
        t->text = mallocCheck(cap * sizeof *t->text);
        t->label = mallocCheck(cap * sizeof *t->label);
        t->source = callocCheck(cap, sizeof *t->source);
        if (s->n > 0) memcpy(t->label, s->label, (size_t)s->n * sizeof *t->label);
        for (int i = 0; i < s->n; i++) {
            t->text[i] = strdupCheck(s->text[i]);
            t->source[i] = s->source ? dup_or_null(s->source[i]) : NULL;
        }
        if (s->ids) {
            t->ids = callocCheck(cap, sizeof *t->ids);
            t->len = callocCheck(cap, sizeof *t->len);
            for (int i = 0; i < s->n; i++) {
                int l = s->len[i];
                t->len[i] = l;
                t->ids[i] = mallocCheck((l > 0 ? (size_t)l : 1) * sizeof **t->ids);
                if (l > 0) memcpy(t->ids[i], s->ids[i], (size_t)l * sizeof **t->ids);
            }
        }
    }
    return c;
}

/* ------------------------------------------------------------ encoding */

/* The encoder writes either into a buffer (save) or into a hash (digest), so
 * the digest is by construction a hash of exactly what a file holds. */
typedef struct {
    lmp_sbuf *buf;
    lmp_sha256 *sha;
} enc;

static void put(enc *e, const void *p, size_t n)
{
    if (e->buf) lmp_sbuf_putn(e->buf, p, n);
    if (e->sha) lmp_sha256_update(e->sha, p, n);
}

static void put_u32(enc *e, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    put(e, b, 4);
}

static void put_str(enc *e, const char *s)
{
    if (!s) {
        put_u32(e, NULL_STR);
        return;
    }
    size_t n = strlen(s);
    put_u32(e, (uint32_t)n);
    put(e, s, n);
}

/* Everything but the digest itself. */
static void encode_content(enc *e, const lmp_dataset *d)
{
    put_str(e, d->name);
    put_u32(e, (uint32_t)d->num_labels);
    for (int i = 0; i < d->num_labels; i++) put_str(e, d->label_names[i] ? d->label_names[i] : "");
    put_u32(e, d->tokenized ? (d->truncate_left ? 2 : 1) : 0);
    put_str(e, d->tokenized ? d->tokenizer_digest : "");
    put_u32(e, (uint32_t)(d->tokenized ? d->vocab_size : 0));
    put_u32(e, (uint32_t)(d->tokenized ? d->pad_id : 0));
    put_u32(e, (uint32_t)(d->tokenized ? d->max_len : 0));
    put_u32(e, (uint32_t)d->nsplits);
    for (int k = 0; k < d->nsplits; k++) {
        const lmp_split *s = &d->splits[k];
        put_str(e, s->name);
        put_u32(e, (uint32_t)s->n);
        for (int i = 0; i < s->n; i++) {
            put_str(e, s->text[i]);
            put_u32(e, (uint32_t)s->label[i]);
            put_str(e, s->source ? s->source[i] : NULL);
            if (d->tokenized) {
                int l = s->ids ? s->len[i] : 0;
                put_u32(e, (uint32_t)l);
                for (int j = 0; j < l; j++) put_u32(e, (uint32_t)s->ids[i][j]);
            }
        }
    }
}

void lmp_dataset_update_digest(lmp_dataset *d)
{
    lmp_sha256 sha;
    lmp_sha256_init(&sha);
    enc e = {NULL, &sha};
    encode_content(&e, d);
    lmp_sha256_final(&sha, d->digest);
}

int lmp_dataset_save(const void *v, const char *path)
{
    const lmp_dataset *d = v;
    if (d->tokenized)
        for (int k = 0; k < d->nsplits; k++)
            if (d->splits[k].n > 0 && (!d->splits[k].ids || !d->splits[k].len))
                return lmp_error("%s: dataset '%s' is marked tokenized but split '%s' has no ids", path,
                                 d->name, d->splits[k].name);
    /* the digest written is that of the content written, whatever d->digest says */
    lmp_sbuf b = {0};
    lmp_sha256 sha;
    lmp_sha256_init(&sha);
    enc head = {&b, NULL}, body = {&b, &sha};
    put(&head, DS_MAGIC, 8);
    put_u32(&head, DS_VERSION);
    encode_content(&body, d);
    char digest[65];
    lmp_sha256_final(&sha, digest);
    put_str(&head, digest);
    int rc = lmp_write_file_atomic(path, b.s, b.len);
    lmp_sbuf_free(&b);
    return rc;
}

/* ------------------------------------------------------------ decoding */

typedef struct {
    const char *path;
    const unsigned char *p;
    size_t n, off;
} dec;

static int need(dec *r, size_t k, const char *what)
{
    if (r->n - r->off < k)
        return lmp_error("%s: truncated dataset file (at byte %zu, reading %s)", r->path, r->off, what);
    return 0;
}

static int get_u32(dec *r, uint32_t *v, const char *what)
{
    if (need(r, 4, what) != 0) return -1;
    const unsigned char *b = r->p + r->off;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    r->off += 4;
    return 0;
}

static int get_i32(dec *r, int *v, const char *what)
{
    uint32_t u;
    if (get_u32(r, &u, what) != 0) return -1;
    *v = (int32_t)u;
    return 0;
}

/* A string; NULL only when allow_null.  Texts must be valid UTF-8 without NULs. */
static int get_str(dec *r, char **out, int allow_null, const char *what)
{
    uint32_t len;
    *out = NULL;
    size_t at = r->off;
    if (get_u32(r, &len, what) != 0) return -1;
    if (len == NULL_STR) {
        if (allow_null) return 0;
        return lmp_error("%s: missing %s (at byte %zu)", r->path, what, at);
    }
    if (need(r, len, what) != 0) return -1;
    const char *s = (const char *)r->p + r->off;
    size_t bad;
    if (memchr(s, 0, len) || !lmp_utf8_valid(s, len, &bad))
        return lmp_error("%s: %s is not valid UTF-8 text (at byte %zu)", r->path, what, at);
    *out = mallocCheck((size_t)len + 1);
    memcpy(*out, s, len);
    (*out)[len] = 0;
    r->off += len;
    return 0;
}

static int decode(dec *r, lmp_dataset **out)
{
    *out = NULL;
    if (r->n < 8 || memcmp(r->p, DS_MAGIC, 8) != 0)
        return lmp_error("%s: not an lmpipe dataset file (bad magic)", r->path);
    r->off = 8;
    uint32_t version, u;
    if (get_u32(r, &version, "version") != 0) return -1;
    if (version != DS_VERSION)
        return lmp_error("%s: dataset format version %u, but this lmpipe reads version %u", r->path, version,
                         DS_VERSION);
    char *name;
    if (get_str(r, &name, 0, "dataset name") != 0) return -1;
    if (get_u32(r, &u, "num_labels") != 0) {
        free(name);
        return -1;
    }
    if (u < 1 || u > 1000000) {
        free(name);
        return lmp_error("%s: bad number of labels %u", r->path, u);
    }
    lmp_dataset *d = lmp_dataset_new(name, (int)u);
    free(name);
    *out = d;
    for (int i = 0; i < d->num_labels; i++) {
        free(d->label_names[i]);
        if (get_str(r, &d->label_names[i], 0, "label name") != 0) return -1;
    }
    char *tokdig;
    if (get_u32(r, &u, "tokenized flag") != 0 || get_str(r, &tokdig, 0, "tokenizer digest") != 0) return -1;
    if (u > 2 || strlen(tokdig) > 64) {
        free(tokdig);
        return lmp_error("%s: bad tokenization header", r->path);
    }
    d->tokenized = u != 0;
    d->truncate_left = u == 2;
    snprintf(d->tokenizer_digest, sizeof d->tokenizer_digest, "%s", tokdig);
    free(tokdig);
    if (get_i32(r, &d->vocab_size, "vocab_size") != 0 || get_i32(r, &d->pad_id, "pad_id") != 0 ||
        get_i32(r, &d->max_len, "max_len") != 0)
        return -1;
    if (d->tokenized && (d->vocab_size < 1 || d->pad_id < 0 || d->pad_id >= d->vocab_size || d->max_len < 0))
        return lmp_error("%s: bad tokenization header (vocab_size %d, pad_id %d, max_len %d)", r->path,
                         d->vocab_size, d->pad_id, d->max_len);
    uint32_t nsplits;
    if (get_u32(r, &nsplits, "split count") != 0) return -1;
    if (nsplits > 1000) return lmp_error("%s: bad split count %u", r->path, nsplits);
    for (uint32_t k = 0; k < nsplits; k++) {
        char *sname;
        if (get_str(r, &sname, 0, "split name") != 0) return -1;
        if (lmp_dataset_split(d, sname)) {
            lmp_error("%s: split '%s' appears twice", r->path, sname);
            free(sname);
            return -1;
        }
        lmp_split *s = lmp_dataset_add_split(d, sname);
        free(sname);
        uint32_t n;
        if (get_u32(r, &n, "example count") != 0) return -1;
        /* each example takes at least 12 bytes: a bound before allocating */
        if (n > 0x7fffffffu || (size_t)n > (r->n - r->off) / 12)
            return lmp_error("%s: split '%s': bad example count %u", r->path, s->name, n);
        size_t cap = cap_for(n);
        s->text = callocCheck(cap, sizeof *s->text);
        s->label = callocCheck(cap, sizeof *s->label);
        s->source = callocCheck(cap, sizeof *s->source);
        if (d->tokenized) {
            s->ids = callocCheck(cap, sizeof *s->ids);
            s->len = callocCheck(cap, sizeof *s->len);
        }
        for (uint32_t i = 0; i < n; i++) {
            s->n = (int)i + 1; /* so split_free frees what was read so far */
            if (get_str(r, &s->text[i], 0, "text") != 0 || get_i32(r, &s->label[i], "label") != 0 ||
                get_str(r, &s->source[i], 1, "source") != 0)
                return -1;
            if (s->label[i] < 0 || s->label[i] >= d->num_labels)
                return lmp_error("%s: split '%s' example %u: label %d out of range [0, %d)", r->path, s->name, i,
                                 s->label[i], d->num_labels);
            if (!d->tokenized) continue;
            uint32_t l;
            if (get_u32(r, &l, "token count") != 0) return -1;
            if (l > (r->n - r->off) / 4 || (d->max_len > 0 && l > (uint32_t)d->max_len))
                return lmp_error("%s: split '%s' example %u: bad token count %u", r->path, s->name, i, l);
            s->len[i] = (int)l;
            s->ids[i] = mallocCheck((l ? l : 1) * sizeof **s->ids);
            for (uint32_t j = 0; j < l; j++) {
                int id = 0;
                get_i32(r, &id, "token id"); /* cannot fail: l was checked against the bytes left */
                if (id < 0 || id >= d->vocab_size)
                    return lmp_error("%s: split '%s' example %u: token id %d out of range [0, %d)", r->path,
                                     s->name, i, id, d->vocab_size);
                s->ids[i][j] = id;
            }
        }
        s->n = (int)n;
    }
    char *digest;
    if (get_str(r, &digest, 0, "digest") != 0) return -1;
    lmp_dataset_update_digest(d);
    int same = strcmp(digest, d->digest) == 0;
    free(digest);
    if (!same) return lmp_error("%s: content does not match its digest (corrupted file)", r->path);
    if (r->off != r->n) return lmp_error("%s: %zu unexpected bytes after the end of the dataset", r->path, r->n - r->off);
    return 0;
}

int lmp_dataset_load(const char *path, void **out)
{
    *out = NULL;
    char *data;
    size_t n;
    if (lmp_read_file(path, DS_MAX_FILE, &data, &n) != 0) return -1;
    dec r = {path, (const unsigned char *)data, n, 0};
    lmp_dataset *d;
    int rc = decode(&r, &d);
    free(data);
    if (rc != 0) {
        lmp_dataset_free(d);
        return -1;
    }
    *out = d;
    return 0;
}

const lmp_type lmp_type_dataset = {"dataset", "labelled sentences in named splits, optionally tokenized",
                                   lmp_dataset_free, lmp_dataset_save, lmp_dataset_load};

/* ------------------------------------------------------------ CoLA TSV */

typedef struct {
    const char *source, *sentence;
    size_t source_len, sentence_len;
    int label;
} cola_row;

static int only_space(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\v' && s[i] != '\f') return 0;
    return 1;
}

/* One line (without its newline and CR): 4 tab-separated columns. */
static int cola_parse_line(const char *path, int lineno, const char *line, size_t n, cola_row *row)
{
    size_t bad;
    const char *nul = memchr(line, 0, n);
    if (nul) return lmp_error("%s:%d: NUL byte at column %zu", path, lineno, (size_t)(nul - line) + 1);
    if (!lmp_utf8_valid(line, n, &bad))
        return lmp_error("%s:%d: invalid UTF-8 at column %zu", path, lineno, bad + 1);
    const char *col[4];
    size_t len[4];
    int ncol = 0;
    const char *start = line, *end = line + n;
    for (const char *p = line;; p++) {
        if (p == end || *p == '\t') {
            if (ncol < 4) col[ncol] = start, len[ncol] = (size_t)(p - start);
            ncol++;
            start = p + 1;
            if (p == end) break;
        }
    }
    if (ncol != 4) return lmp_error("%s:%d: expected 4 tab-separated columns, found %d", path, lineno, ncol);
    if (len[1] != 1 || (col[1][0] != '0' && col[1][0] != '1')) {
        if (len[1] <= 16) return lmp_error("%s:%d: label '%.*s' is not 0 or 1", path, lineno, (int)len[1], col[1]);
        return lmp_error("%s:%d: label column (%zu bytes) is not 0 or 1", path, lineno, len[1]);
    }
    if (only_space(col[3], len[3])) return lmp_error("%s:%d: empty sentence", path, lineno);
    row->source = col[0];
    row->source_len = len[0];
    row->label = col[1][0] - '0';
    row->sentence = col[3];
    row->sentence_len = len[3];
    return 0;
}

int lmp_cola_read(const char *path, lmp_split *split)
{
    char *data;
    size_t n;
    if (lmp_read_file(path, 256u << 20, &data, &n) != 0) return -1;
    cola_row *rows = NULL;
    size_t nrows = 0, cap = 0;
    int lineno = 0, rc = 0;
    /* parse everything first: a bad row anywhere leaves the split untouched */
    for (size_t pos = 0; pos < n && rc == 0;) {
        const char *line = data + pos;
        const char *nl = memchr(line, '\n', n - pos);
        size_t len = nl ? (size_t)(nl - line) : n - pos;
        pos += len + (nl ? 1 : 0);
        lineno++;
        if (len > 0 && line[len - 1] == '\r') len--;
        if (nrows == cap) {
            cap = cap ? 2 * cap : 1024;
            rows = reallocCheck(rows, cap * sizeof *rows);
        }
        rc = cola_parse_line(path, lineno, line, len, &rows[nrows]);
        nrows++;
    }
    if (rc == 0 && nrows == 0) rc = lmp_error("%s: empty file (no rows)", path);
    if (rc == 0) {
        lmp_sbuf src = {0}, sent = {0};
        for (size_t i = 0; i < nrows; i++) {
            src.len = sent.len = 0;
            lmp_sbuf_putn(&src, rows[i].source, rows[i].source_len);
            lmp_sbuf_putn(&sent, rows[i].sentence, rows[i].sentence_len);
            lmp_split_add(split, sent.s, rows[i].label, src.s);
        }
        lmp_sbuf_free(&src);
        lmp_sbuf_free(&sent);
    }
    free(rows);
    free(data);
    return rc;
}
