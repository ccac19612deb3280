/*
 * bpe.c — GPT-2's byte-level BPE tokenizer: loading encoder.json/vocab.bpe
 * (or vocab.json/merges.txt), the pre-tokenizer regex, the merge loop with a
 * word cache, and decoding.  See bpe.h for the exact behaviour.
 *
 * Merges are kept as token ids: (left id, right id) -> (rank, merged id) in an
 * open-addressing hash table.  Since every symbol the reference algorithm can
 * build is a vocabulary token with a unique string, merging ids is the same
 * as merging strings.
 */
#include "config.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <jansson.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bpe.h"
#include "jsonfile.h"
#include "util.h"

#define EOT_TEXT "<|endoftext|>"
#define CACHE_MAX_KEY 64 /* longer words are rare and not worth keeping */
#define CACHE_DEFAULT 65536
/* GPT-2's files are 1 MB and 0.5 MB; the merge table's size is a uint32_t. */
#define MAX_VOCAB_BYTES (1u << 30)
#define MAX_MERGES_BYTES (1u << 30)

/* ------------------------------------------------------ byte-level alphabet */

/* GPT-2 keeps the printable Latin-1 bytes as themselves and maps the other 68
 * bytes (controls, space, DEL, NBSP, soft hyphen) in order to U+0100.. so that
 * every token is a printable string without whitespace. */
static int printable_byte(int b)
{
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

int lmp_bpe_byte_char(int b)
{
    if (b < 0 || b > 255) return -1;
    if (printable_byte(b)) return b;
    int n = 0;
    for (int i = 0; i < b; i++) n += !printable_byte(i);
    return 256 + n;
}

#define ALPHABET_END (256 + 68) /* code points of the alphabet are below this */

/* cp_byte[cp] = the byte that code point cp stands for, or -1. */
static void alphabet_inverse(int cp_byte[ALPHABET_END])
{
    for (int i = 0; i < ALPHABET_END; i++) cp_byte[i] = -1;
    for (int b = 0; b < 256; b++) cp_byte[lmp_bpe_byte_char(b)] = b;
}

/* Decode one UTF-8 character of a valid string (Jansson checks keys). */
static uint32_t utf8_next(const unsigned char **s)
{
    const unsigned char *p = *s;
    uint32_t c = p[0];
    int n = 0;
    if (c >= 0xF0) c &= 0x07, n = 3;
    else if (c >= 0xE0) c &= 0x0F, n = 2;
    else if (c >= 0xC0) c &= 0x1F, n = 1;
    for (int i = 1; i <= n && p[i]; i++) c = (c << 6) | (p[i] & 0x3F);
    *s = p + 1 + n;
    return c;
}

/* ----------------------------------------------------------- pre-tokenizer */

/* Python regex's \s (Unicode White_Space), spelled out so that PCRE2's own
 * idea of \s (which differs across versions and UCP settings) plays no part. */
#define WS "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}" \
           "\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
static const char PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+"
    "|[" WS "]+(?![^" WS "])|[" WS "]+";

struct lmp_pretok {
    pcre2_code *re;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;
    int jit;
    /* a match found after a run of invalid bytes, returned by the next call */
    const char *pend_text;
    size_t pend_len, pend_start, pend_end;
};

int lmp_pretok_new(lmp_pretok **out)
{
    *out = NULL;
    int err;
    PCRE2_SIZE erroff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)PATTERN, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &err, &erroff, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return lmp_error("bpe: cannot compile the pre-tokenizer regex at offset %zu: %s",
                         (size_t)erroff, (char *)msg);
    }
    lmp_pretok *pt = callocCheck(1, sizeof *pt);
    pt->re = re;
    pt->md = pcre2_match_data_create_from_pattern(re, NULL);
    pt->mctx = pcre2_match_context_create(NULL);
    if (!pt->md || !pt->mctx) {
        fprintf(stderr, "lmpipe: out of memory at %s:%d\n", __FILE__, __LINE__);
        exit(1);
    }
    /* JIT is several times faster; without it (a platform PCRE2 does not
     * support) the interpreter gives the same matches. */
    if (pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0) {
        /* A larger JIT stack than the 32 KiB default, for backtracking over
         * very long runs of whitespace. */
        pt->jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
        if (pt->jit_stack) {
            pcre2_jit_stack_assign(pt->mctx, NULL, pt->jit_stack);
            pt->jit = 1;
        }
    }
    *out = pt;
    return 0;
}

void lmp_pretok_free(lmp_pretok *pt)
{
    if (!pt) return;
    pcre2_jit_stack_free(pt->jit_stack);
    pcre2_match_context_free(pt->mctx);
    pcre2_match_data_free(pt->md);
    pcre2_code_free(pt->re);
    free(pt);
}

int lmp_pretok_next(lmp_pretok *pt, const char *text, size_t len, size_t *pos,
                    size_t *start, size_t *end)
{
    if (*pos >= len) return 0;
    if (pt->pend_text == text && pt->pend_len == len && pt->pend_start == *pos) {
        pt->pend_text = NULL;
        *start = pt->pend_start;
        *pos = *end = pt->pend_end;
        return 1;
    }
    int rc = pt->jit ? pcre2_jit_match(pt->re, (PCRE2_SPTR)text, len, *pos, 0, pt->md, pt->mctx)
                     : pcre2_match(pt->re, (PCRE2_SPTR)text, len, *pos, 0, pt->md, pt->mctx);
    if (rc == PCRE2_ERROR_NOMATCH) { /* only invalid UTF-8 is left */
        *start = *pos;
        *pos = *end = len;
        return 1;
    }
    if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        return lmp_error("bpe: pre-tokenizer failed at byte %zu: %s", *pos, (char *)msg);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(pt->md);
    if (ov[1] <= ov[0] || ov[0] < *pos || ov[1] > len) /* cannot happen: no empty matches */
        return lmp_error("bpe: pre-tokenizer matched an empty piece at byte %zu", (size_t)ov[0]);
    if (ov[0] > *pos) { /* invalid bytes before the match: a piece of their own */
        pt->pend_text = text;
        pt->pend_len = len;
        pt->pend_start = ov[0];
        pt->pend_end = ov[1];
        *start = *pos;
        *pos = *end = ov[0];
        return 1;
    }
    *start = ov[0];
    *pos = *end = ov[1];
    return 1;
}

/* ---------------------------------------------------------------- tables */

typedef struct {
    int32_t a, b;   /* the pair of token ids; a < 0: empty slot */
    int32_t rank;   /* line order in merges.txt, 0 first */
    int32_t res;    /* the merged token's id */
} merge;

typedef struct {
    uint64_t h;
    uint32_t key_off, ids_off;
    uint16_t key_len, n_ids; /* key_len 0: empty slot */
} cache_slot;

/* heap entry of the merge loop: lowest rank first, then leftmost */
typedef struct {
    uint64_t key; /* rank << 32 | position */
    int32_t a, b, res;
} heap_ent;

struct lmp_bpe {
    int n_vocab, eot, ordered, n_merges;
    char *source;       /* the vocab.json it was loaded from, for messages */
    char *tok_data;     /* bytes of token i: tok_data[tok_off[i] .. tok_off[i+1]) */
    uint32_t *tok_off;
    int byte_id[256];   /* the single-byte tokens */
    merge *mtab;
    uint32_t mmask;
    lmp_pretok *pt;
    /* word cache */
    int cache_max, cache_n;
    cache_slot *cslots;
    uint32_t cmask;
    unsigned char *ckeys;
    size_t ckeys_len, ckeys_cap;
    int *cids;
    size_t cids_len, cids_cap;
    /* scratch of the merge loop */
    int *w_id, *w_next, *w_prev;
    size_t w_cap;
    heap_ent *heap;
    size_t heap_cap;
};

static inline uint32_t pair_hash(int32_t a, int32_t b)
{
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    k *= 0x9E3779B97F4A7C15ull;
    return (uint32_t)(k >> 32) ^ (uint32_t)(k >> 13);
}

static inline const merge *merge_find(const lmp_bpe *t, int32_t a, int32_t b)
{
    for (uint32_t i = pair_hash(a, b) & t->mmask;; i = (i + 1) & t->mmask) {
        const merge *m = &t->mtab[i];
        if (m->a < 0) return NULL;
        if (m->a == a && m->b == b) return m;
    }
}


/* ----------------------------------------------------------------- loading */

/* The vocabulary's tokens as bytes, checked: ids dense and unique, every
 * character in the byte-level alphabet, all 256 single bytes present. */
static int load_vocab(lmp_bpe *t, const char *path, json_t *root)
{
    size_t n = json_object_size(root); /* an object: lmp_json_read_file checked */
    if (n == 0) return lmp_error("%s: no tokens", path);
    if (n > INT_MAX / 2) return lmp_error("%s: too many tokens (%zu)", path, n);
    const char **name = callocCheck(n, sizeof *name);
    size_t total = 0;
    const char *key;
    json_t *val;
    int rc = -1;
    json_object_foreach(root, key, val) {
        if (!json_is_integer(val)) {
            lmp_error("%s: token \"%s\": id is not an integer", path, key);
            goto done;
        }
        json_int_t id = json_integer_value(val);
        if (id < 0 || (size_t)id >= n) {
            lmp_error("%s: ids are not dense: token \"%s\" has id %lld, but %zu tokens need ids 0..%zu",
                      path, key, (long long)id, n, n - 1);
            goto done;
        }
        if (name[id]) {
            lmp_error("%s: duplicate id %lld (tokens \"%s\" and \"%s\")", path, (long long)id,
                      name[id], key);
            goto done;
        }
        if (!key[0]) {
            lmp_error("%s: empty token (id %lld)", path, (long long)id);
            goto done;
        }
        name[id] = key;
        total += strlen(key);
    }
    int cp_byte[ALPHABET_END];
    alphabet_inverse(cp_byte);
    t->n_vocab = (int)n;
    t->tok_data = callocCheck(total + 16, 1); /* + 16: see lmp_bpe_decode */
    t->tok_off = mallocCheck((n + 1) * sizeof *t->tok_off);
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    size_t off = 0;
    for (size_t id = 0; id < n; id++) {
        t->tok_off[id] = (uint32_t)off;
        const unsigned char *s = (const unsigned char *)name[id];
        while (*s) {
            uint32_t c = utf8_next(&s);
            if (c >= ALPHABET_END || cp_byte[c] < 0) {
                lmp_error("%s: token \"%s\" (id %zu) has the character U+%04X, which is not in "
                          "the byte-level alphabet", path, name[id], id, c);
                goto done;
            }
            t->tok_data[off++] = (char)cp_byte[c];
        }
        if (off - t->tok_off[id] == 1) t->byte_id[(unsigned char)t->tok_data[off - 1]] = (int)id;
    }
    t->tok_off[n] = (uint32_t)off;
    for (int b = 0; b < 256; b++)
        if (t->byte_id[b] < 0) {
            char u[3] = { (char)(0xC0 | (lmp_bpe_byte_char(b) >> 6)),
                          (char)(0x80 | (lmp_bpe_byte_char(b) & 0x3F)), 0 };
            if (lmp_bpe_byte_char(b) < 0x80) u[0] = (char)b, u[1] = 0;
            lmp_error("%s: no token for byte 0x%02X (\"%s\")", path, b, u);
            goto done;
        }
    json_t *eot = json_object_get(root, EOT_TEXT);
    t->eot = eot ? (int)json_integer_value(eot) : -1;
    rc = 0;
done:
    free(name);
    return rc;
}

static int token_id(json_t *root, const char *s)
{
    json_t *v = json_object_get(root, s);
    return v ? (int)json_integer_value(v) : -1;
}

static int load_merges(lmp_bpe *t, const char *path, const char *vocab_path, json_t *root)
{
    char *data;
    size_t len;
    if (lmp_read_file(path, MAX_MERGES_BYTES, &data, &len) != 0) return -1;
    if (len == 0) { /* a truncated download: every writer starts with "#version" */
        free(data);
        return lmp_error("%s: empty file (expected a \"#version\" line and merges)", path);
    }
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += data[i] == '\n';
    uint32_t cap = 16;
    while (cap < 2 * lines) cap *= 2;
    t->mtab = mallocCheck(cap * sizeof *t->mtab);
    for (uint32_t i = 0; i < cap; i++) t->mtab[i].a = -1;
    t->mmask = cap - 1;
    int *mline = mallocCheck(lines * sizeof *mline);                 /* rank -> line */
    int32_t *ma = mallocCheck(lines * sizeof *ma), *mb = mallocCheck(lines * sizeof *mb),
            *mr = mallocCheck(lines * sizeof *mr);
    size_t sym_cap = 256;
    char *sym = mallocCheck(sym_cap);
    int rc = -1, n = 0, lineno = 0;
    for (char *p = data, *end = data + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *q = nl ? nl : end;
        lineno++;
        char *next = nl ? nl + 1 : end;
        if (q > p && q[-1] == '\r') q--;
        size_t ll = (size_t)(q - p);
        if (lineno == 1 && ll >= 8 && memcmp(p, "#version", 8) == 0) {
            p = next;
            continue;
        }
        char *sp = memchr(p, ' ', ll);
        if (ll == 0 || !sp || sp == p || sp == q - 1 || memchr(sp + 1, ' ', (size_t)(q - sp - 1))) {
            lmp_error("%s:%d: malformed merge line \"%.*s\" (expected two symbols separated by "
                      "one space)", path, lineno, (int)(ll > 80 ? 80 : ll), p);
            goto done;
        }
        if (ll + 2 > sym_cap) {
            sym_cap = 2 * ll + 2;
            sym = reallocCheck(sym, sym_cap);
        }
        /* sym = "A\0B\0" and, after it, "AB\0" */
        size_t la = (size_t)(sp - p), lb = (size_t)(q - sp - 1);
        char *A = sym, *B = sym + la + 1;
        memcpy(A, p, la);
        A[la] = 0;
        memcpy(B, sp + 1, lb);
        B[lb] = 0;
        int ia = memchr(A, 0, la) ? -1 : token_id(root, A);
        int ib = memchr(B, 0, lb) ? -1 : token_id(root, B);
        if (ia < 0 || ib < 0) {
            lmp_error("%s:%d: unknown symbol \"%s\" (not a token in %s)", path, lineno,
                      ia < 0 ? A : B, vocab_path);
            goto done;
        }
        char *AB = mallocCheck(la + lb + 1);
        memcpy(AB, A, la);
        memcpy(AB + la, B, lb + 1);
        int ir = token_id(root, AB);
        if (ir < 0) {
            lmp_error("%s:%d: merge result \"%s\" is not a token in %s", path, lineno, AB, vocab_path);
            free(AB);
            goto done;
        }
        free(AB);
        uint32_t i = pair_hash(ia, ib) & t->mmask;
        while (t->mtab[i].a >= 0 && !(t->mtab[i].a == ia && t->mtab[i].b == ib))
            i = (i + 1) & t->mmask;
        if (t->mtab[i].a >= 0) {
            lmp_error("%s:%d: duplicate merge \"%s %s\" (first on line %d)", path, lineno, A, B,
                      mline[t->mtab[i].rank]);
            goto done;
        }
        t->mtab[i] = (merge){ ia, ib, n, ir };
        mline[n] = lineno;
        ma[n] = ia, mb[n] = ib, mr[n] = ir;
        n++;
        p = next;
    }
    t->n_merges = n;
    /* ordered: each merge's parts were all made by earlier merges (or are bytes) */
    int *maxprod = mallocCheck((size_t)t->n_vocab * sizeof *maxprod);
    for (int i = 0; i < t->n_vocab; i++) maxprod[i] = -1;
    for (int r = 0; r < n; r++)
        if (maxprod[mr[r]] < r) maxprod[mr[r]] = r;
    t->ordered = 1;
    for (int r = 0; r < n; r++)
        if (maxprod[ma[r]] >= r || maxprod[mb[r]] >= r) t->ordered = 0;
    free(maxprod);
    rc = 0;
done:
    free(sym);
    free(mline);
    free(ma);
    free(mb);
    free(mr);
    free(data);
    return rc;
}

int lmp_bpe_load(const char *vocab_json, const char *merges_txt, lmp_bpe **out)
{
    *out = NULL;
    json_t *root;
    if (lmp_json_read_file(vocab_json, MAX_VOCAB_BYTES, JSON_REJECT_DUPLICATES,
                           "a JSON object mapping tokens to ids", &root) != 0)
        return -1;
    lmp_bpe *t = callocCheck(1, sizeof *t);
    t->source = strdupCheck(vocab_json);
    if (load_vocab(t, vocab_json, root) != 0 || load_merges(t, merges_txt, vocab_json, root) != 0 ||
        lmp_pretok_new(&t->pt) != 0) {
        json_decref(root);
        lmp_bpe_free(t);
        return -1;
    }
    json_decref(root);
    lmp_bpe_set_cache(t, CACHE_DEFAULT);
    *out = t;
    return 0;
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && !S_ISDIR(st.st_mode);
}

int lmp_bpe_load_dir(const char *dir, lmp_bpe **out)
{
    *out = NULL;
    struct stat st;
    if (stat(dir, &st) != 0) return lmp_error("%s: No such file or directory", dir);
    if (!S_ISDIR(st.st_mode)) return lmp_error("%s: not a directory", dir);
    static const char *const pairs[2][2] = { { "vocab.json", "merges.txt" },
                                             { "encoder.json", "vocab.bpe" } };
    for (int i = 0; i < 2; i++) {
        char *v = lmp_strfmt("%s/%s", dir, pairs[i][0]);
        char *m = lmp_strfmt("%s/%s", dir, pairs[i][1]);
        int found = is_file(v) || is_file(m);
        int rc = found ? lmp_bpe_load(v, m, out) : 0;
        free(v);
        free(m);
        if (found) return rc;
    }
    return lmp_error("%s: no tokenizer files (expected vocab.json + merges.txt or "
                     "encoder.json + vocab.bpe)", dir);
}

void lmp_bpe_free(lmp_bpe *t)
{
    if (!t) return;
    free(t->source);
    free(t->tok_data);
    free(t->tok_off);
    free(t->mtab);
    lmp_pretok_free(t->pt);
    free(t->cslots);
    free(t->ckeys);
    free(t->cids);
    free(t->w_id);
    free(t->w_next);
    free(t->w_prev);
    free(t->heap);
    free(t);
}

int lmp_bpe_vocab_size(const lmp_bpe *t) { return t->n_vocab; }
int lmp_bpe_eot(const lmp_bpe *t) { return t->eot; }
const char *lmp_bpe_source(const lmp_bpe *t) { return t->source; }
int lmp_bpe_is_ordered(const lmp_bpe *t) { return t->ordered; }

const char *lmp_bpe_token(const lmp_bpe *t, int id, size_t *len)
{
    if (id < 0 || id >= t->n_vocab) return NULL;
    *len = t->tok_off[id + 1] - t->tok_off[id];
    return t->tok_data + t->tok_off[id];
}

/* ------------------------------------------------------------------- cache */

static void cache_clear(lmp_bpe *t)
{
    if (t->cslots) memset(t->cslots, 0, ((size_t)t->cmask + 1) * sizeof *t->cslots);
    t->cache_n = 0;
    t->ckeys_len = t->cids_len = 0;
}

void lmp_bpe_set_cache(lmp_bpe *t, int max_entries)
{
    free(t->cslots);
    t->cslots = NULL;
    t->cache_max = max_entries > 0 ? max_entries : 0;
    if (t->cache_max) {
        uint32_t cap = 16;
        while (cap < 2u * (uint32_t)t->cache_max) cap *= 2;
        t->cmask = cap - 1;
        t->cslots = mallocCheck(cap * sizeof *t->cslots);
    }
    cache_clear(t);
}

/* The slot for key (found: key_len != 0; else the empty slot to fill). */
static cache_slot *cache_slot_for(lmp_bpe *t, const unsigned char *p, size_t n, uint64_t h)
{
    for (uint32_t i = (uint32_t)h & t->cmask;; i = (i + 1) & t->cmask) {
        cache_slot *s = &t->cslots[i];
        if (s->key_len == 0) return s;
        if (s->h == h && s->key_len == n && memcmp(t->ckeys + s->key_off, p, n) == 0) return s;
    }
}

/* ------------------------------------------------------------- merge loop */

static void heap_push(lmp_bpe *t, size_t *hn, const merge *m, int pos)
{
    if (*hn == t->heap_cap) {
        t->heap_cap = t->heap_cap ? 2 * t->heap_cap : 64;
        t->heap = reallocCheck(t->heap, t->heap_cap * sizeof *t->heap);
    }
    heap_ent e = { ((uint64_t)(uint32_t)m->rank << 32) | (uint32_t)pos, m->a, m->b, m->res };
    size_t i = (*hn)++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (t->heap[up].key <= e.key) break;
        t->heap[i] = t->heap[up];
        i = up;
    }
    t->heap[i] = e;
}

static heap_ent heap_pop(lmp_bpe *t, size_t *hn)
{
    heap_ent top = t->heap[0], last = t->heap[--*hn];
    size_t i = 0, n = *hn;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && t->heap[c + 1].key < t->heap[c].key) c++;
        if (last.key <= t->heap[c].key) break;
        t->heap[i] = t->heap[c];
        i = c;
    }
    if (n) t->heap[i] = last;
    return top;
}

/* BPE of one piece of n >= 2 bytes into t->w_id[0..*m).
 * Ordered vocabularies: always merge the lowest-rank pair present, leftmost
 * first, with a heap and a linked list.  This equals the reference (which
 * merges every occurrence of the lowest-rank pair, left to right, then looks
 * again) because a merge can only create pairs of higher rank than its own.
 * Other vocabularies: the reference loop itself. */
static void bpe_word(lmp_bpe *t, const unsigned char *p, size_t n, size_t *m)
{
    if (n > t->w_cap) {
        t->w_cap = n < 64 ? 64 : 2 * n;
        t->w_id = reallocCheck(t->w_id, t->w_cap * sizeof *t->w_id);
        t->w_next = reallocCheck(t->w_next, t->w_cap * sizeof *t->w_next);
        t->w_prev = reallocCheck(t->w_prev, t->w_cap * sizeof *t->w_prev);
    }
    int *id = t->w_id;
    for (size_t i = 0; i < n; i++) id[i] = t->byte_id[p[i]];
    if (!t->ordered) {
        size_t k = n;
        while (k > 1) {
            const merge *best = NULL;
            for (size_t i = 0; i + 1 < k; i++) {
                const merge *mm = merge_find(t, id[i], id[i + 1]);
                if (mm && (!best || mm->rank < best->rank)) best = mm;
            }
            if (!best) break;
            size_t o = 0;
            for (size_t i = 0; i < k;) {
                if (i + 1 < k && id[i] == best->a && id[i + 1] == best->b) {
                    id[o++] = best->res;
                    i += 2;
                } else {
                    id[o++] = id[i++];
                }
            }
            k = o;
        }
        *m = k;
        return;
    }
    int *nx = t->w_next, *pv = t->w_prev;
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) {
        nx[i] = i + 1 < n ? (int)i + 1 : -1;
        pv[i] = (int)i - 1;
        if (i + 1 < n) {
            const merge *mm = merge_find(t, id[i], id[i + 1]);
            if (mm) heap_push(t, &hn, mm, (int)i);
        }
    }
    while (hn) {
        heap_ent e = heap_pop(t, &hn);
        int i = (int)(uint32_t)e.key, j = nx[i];
        if (id[i] != e.a || j < 0 || id[j] != e.b) continue; /* stale */
        id[i] = e.res;
        id[j] = -1;
        nx[i] = nx[j];
        if (nx[j] >= 0) pv[nx[j]] = i;
        const merge *mm;
        if (pv[i] >= 0 && (mm = merge_find(t, id[pv[i]], id[i]))) heap_push(t, &hn, mm, pv[i]);
        if (nx[i] >= 0 && (mm = merge_find(t, id[i], id[nx[i]]))) heap_push(t, &hn, mm, i);
    }
    size_t k = 0;
    for (int i = 0; i >= 0; i = nx[i]) id[k++] = id[i];
    *m = k;
}

/* ---------------------------------------------------------------- encoding */

typedef struct {
    int **ids;
    size_t *n, *cap;
} id_out;

static void out_reserve(id_out *o, size_t more)
{
    if (*o->n + more <= *o->cap) return;
    size_t c = *o->cap ? *o->cap : 256;
    while (c < *o->n + more) c *= 2;
    *o->ids = reallocCheck(*o->ids, c * sizeof **o->ids);
    *o->cap = c;
}

static void encode_piece(lmp_bpe *t, const unsigned char *p, size_t n, id_out *o)
{
    if (n == 1) {
        out_reserve(o, 1);
        (*o->ids)[(*o->n)++] = t->byte_id[p[0]];
        return;
    }
    int cacheable = t->cache_max && n <= CACHE_MAX_KEY;
    uint64_t h = 0;
    if (cacheable) {
        h = lmp_hash_bytes(p, n);
        cache_slot *s = cache_slot_for(t, p, n, h);
        if (s->key_len) {
            out_reserve(o, s->n_ids);
            memcpy(*o->ids + *o->n, t->cids + s->ids_off, s->n_ids * sizeof(int));
            *o->n += s->n_ids;
            return;
        }
    }
    size_t m;
    bpe_word(t, p, n, &m);
    out_reserve(o, m);
    memcpy(*o->ids + *o->n, t->w_id, m * sizeof(int));
    *o->n += m;
    if (t->w_cap > (1 << 16)) { /* a huge piece: don't keep its scratch for the next */
        free(t->w_id), free(t->w_next), free(t->w_prev), free(t->heap);
        t->w_id = t->w_next = t->w_prev = NULL;
        t->heap = NULL;
        t->w_cap = t->heap_cap = 0;
    }
    if (!cacheable) return;
    if (t->cache_n >= t->cache_max) cache_clear(t);
    if (t->ckeys_len + n > t->ckeys_cap) {
        t->ckeys_cap = t->ckeys_cap ? 2 * t->ckeys_cap : 1 << 16;
        t->ckeys = reallocCheck(t->ckeys, t->ckeys_cap);
    }
    if (t->cids_len + m > t->cids_cap) {
        t->cids_cap = t->cids_cap ? 2 * t->cids_cap : 1 << 14;
        t->cids = reallocCheck(t->cids, t->cids_cap * sizeof *t->cids);
    }
    cache_slot *s = cache_slot_for(t, p, n, h);
    *s = (cache_slot){ h, (uint32_t)t->ckeys_len, (uint32_t)t->cids_len, (uint16_t)n, (uint16_t)m };
    memcpy(t->ckeys + t->ckeys_len, p, n);
    t->ckeys_len += n;
    memcpy(t->cids + t->cids_len, t->w_id, m * sizeof(int));
    t->cids_len += m;
    t->cache_n++;
}

static int encode_segment(lmp_bpe *t, const char *text, size_t len, id_out *o)
{
    size_t pos = 0, s, e;
    int r;
    while ((r = lmp_pretok_next(t->pt, text, len, &pos, &s, &e)) == 1)
        encode_piece(t, (const unsigned char *)text + s, e - s, o);
    return r;
}

int lmp_bpe_encode_append(lmp_bpe *t, const char *text, size_t len, int flags,
                          int **ids, size_t *n_ids, size_t *cap)
{
    id_out o = { ids, n_ids, cap };
    if (!(flags & LMP_BPE_SPECIAL) || t->eot < 0) return encode_segment(t, text, len, &o);
    const size_t el = strlen(EOT_TEXT);
    for (;;) {
        const char *hit = len >= el ? memmem(text, len, EOT_TEXT, el) : NULL;
        size_t seg = hit ? (size_t)(hit - text) : len;
        if (encode_segment(t, text, seg, &o) != 0) return -1;
        if (!hit) return 0;
        out_reserve(&o, 1);
        (*ids)[(*n_ids)++] = t->eot;
        text += seg + el;
        len -= seg + el;
    }
}

/*
 * Streaming.  A piece of the pre-tokenizer is the same in text[0..len) as in
 * any longer text with that prefix when matching it never looked at a byte
 * at or past len.  The regex has no lookbehind, so matching at a piece's
 * start depends only on what follows; it looks past a piece's end by at most
 * one character (a greedy run checking that the next character does not
 * continue it, `\s+(?!\S)` checking the character after the whitespace) and
 * from its start by at most three characters (the contractions 're, 've,
 * 'll).  With characters of up to 4 bytes that is under 8 bytes past the
 * end, so a piece ending STREAM_MARGIN bytes before len is final, and so are
 * all pieces before it.  A chunk cut inside a character or "<|endoftext|>"
 * (13 bytes) cuts inside the margin.
 */
#define STREAM_MARGIN 16

/* Encode the pieces of a segment (no special token inside) that are final:
 * all of them when final, else those ending STREAM_MARGIN bytes before len;
 * *used is where the first piece not encoded starts. */
static int encode_segment_prefix(lmp_bpe *t, const char *text, size_t len, int final, id_out *o,
                                 size_t *used)
{
    size_t pos = 0, s, e;
    int r;
    *used = 0;
    while ((r = lmp_pretok_next(t->pt, text, len, &pos, &s, &e)) == 1) {
        if (!final && e + STREAM_MARGIN > len) break;
        encode_piece(t, (const unsigned char *)text + s, e - s, o);
        *used = e;
    }
    t->pt->pend_text = NULL; /* a match held back after invalid bytes: not wanted any more */
    return r < 0 ? -1 : 0;
}

int lmp_bpe_encode_stream(lmp_bpe *t, const char *text, size_t len, int final, int flags,
                          int **ids, size_t *n_ids, size_t *cap, size_t *used)
{
    id_out o = { ids, n_ids, cap };
    size_t done = 0, u;
    *used = 0;
    if ((flags & LMP_BPE_SPECIAL) && t->eot >= 0) {
        /* a segment that ends at a special token is complete: encode all of it */
        const size_t el = strlen(EOT_TEXT);
        const char *hit;
        while (len - done >= el && (hit = memmem(text + done, len - done, EOT_TEXT, el))) {
            size_t seg = (size_t)(hit - (text + done));
            if (encode_segment(t, text + done, seg, &o) != 0) return -1;
            out_reserve(&o, 1);
            (*ids)[(*n_ids)++] = t->eot;
            done += seg + el;
        }
    }
    if (encode_segment_prefix(t, text + done, len - done, final, &o, &u) != 0) return -1;
    *used = done + u;
    return 0;
}

int lmp_bpe_encode(lmp_bpe *t, const char *text, size_t len, int flags, int **ids, size_t *n_ids)
{
    size_t cap = 0;
    *ids = NULL;
    *n_ids = 0;
    if (lmp_bpe_encode_append(t, text, len, flags, ids, n_ids, &cap) != 0) {
        free(*ids);
        *ids = NULL;
        *n_ids = 0;
        return -1;
    }
    if (!*ids) *ids = mallocCheck(sizeof(int)); /* a valid pointer even for no tokens */
    return 0;
}

/* ---------------------------------------------------------------- decoding */

int lmp_bpe_decode(const lmp_bpe *t, const int *ids, size_t n_ids, char **text, size_t *len)
{
    *text = NULL;
    *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return lmp_error("token id %d out of range (the vocabulary has ids 0..%d)", ids[i],
                             t->n_vocab - 1);
        total += t->tok_off[ids[i] + 1] - t->tok_off[ids[i]];
    }
    /* tokens are short: copy a fixed 16 bytes (tok_data and out have room
     * past the end), a single unaligned vector move, and advance by the length */
    char *out = mallocCheck(total + 16), *w = out;
    for (size_t i = 0; i < n_ids; i++) {
        uint32_t a = t->tok_off[ids[i]], b = t->tok_off[ids[i] + 1];
        if (b - a <= 16) memcpy(w, t->tok_data + a, 16);
        else memcpy(w, t->tok_data + a, b - a);
        w += b - a;
    }
    *w = 0;
    *text = out;
    *len = total;
    return 0;
}
