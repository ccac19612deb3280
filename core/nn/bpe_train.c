/*
 * bpe_train.c — learns a byte-level BPE vocabulary from text files and writes
 * it as vocab.json + merges.txt in GPT-2's exact formats (see bpe.h).
 *
 * The text is pre-tokenized with GPT-2's regex and the pieces ("words") are
 * counted once; merging then works on the unique words only.  Pair counts
 * are kept up to date incrementally: each pair knows the words it occurs in,
 * and a merge rewrites just those words, moving their pair counts from the
 * old symbols to the new.  A max-heap with lazy deletion picks the next pair.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bpe.h"
#include "util.h"

#define EOT_TEXT "<|endoftext|>"


/* A set of byte strings with a counter or an id each (open addressing). */
typedef struct {
    uint64_t h;
    size_t off, len; /* len 0: empty slot (no empty strings are stored) */
    int64_t val;
} str_slot;

typedef struct {
    str_slot *slots;
    size_t mask, n;
    unsigned char *bytes;
    size_t bytes_len, bytes_cap;
} str_map;

static void str_map_init(str_map *m)
{
    memset(m, 0, sizeof *m);
    m->mask = 1023;
    m->slots = callocCheck(m->mask + 1, sizeof *m->slots);
}

static void str_map_free(str_map *m)
{
    free(m->slots);
    free(m->bytes);
}

/* The value slot of key, added with value 0 if absent (created set to 1 then). */
static int64_t *str_map_get(str_map *m, const unsigned char *p, size_t n, int *created)
{
    uint64_t h = lmp_hash_bytes(p, n);
    *created = 0;
    size_t i;
    for (i = h & m->mask; m->slots[i].len; i = (i + 1) & m->mask)
        if (m->slots[i].h == h && m->slots[i].len == n && !memcmp(m->bytes + m->slots[i].off, p, n))
            return &m->slots[i].val;
    if (2 * (m->n + 1) > m->mask + 1) { /* grow, then find the empty slot again */
        size_t cap = 2 * (m->mask + 1);
        str_slot *s = callocCheck(cap, sizeof *s);
        for (size_t j = 0; j <= m->mask; j++)
            if (m->slots[j].len) {
                size_t k = m->slots[j].h & (cap - 1);
                while (s[k].len) k = (k + 1) & (cap - 1);
                s[k] = m->slots[j];
            }
        free(m->slots);
        m->slots = s;
        m->mask = cap - 1;
        for (i = h & m->mask; m->slots[i].len; i = (i + 1) & m->mask) {}
    }
    if (m->bytes_len + n > m->bytes_cap) {
        m->bytes_cap = 2 * (m->bytes_len + n) + 4096;
        m->bytes = reallocCheck(m->bytes, m->bytes_cap);
    }
    memcpy(m->bytes + m->bytes_len, p, n);
    m->slots[i] = (str_slot){ h, m->bytes_len, n, 0 };
    m->bytes_len += n;
    m->n++;
    *created = 1;
    return &m->slots[i].val;
}

/* ----------------------------------------------------------------- pairs */

typedef struct {
    int32_t a, b;
    int64_t count;
    int *words; /* words the pair occurs (or once occurred) in; duplicates allowed */
    int n_words, cap_words;
    int stamp;  /* last merge step that raised the count */
} pair_t;

typedef struct {
    pair_t *p;
    int n, cap;
    int *slots; /* index into p, -1 empty */
    uint32_t mask;
} pair_map;

static inline uint32_t pair_hash(int32_t a, int32_t b)
{
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    k *= 0x9E3779B97F4A7C15ull;
    return (uint32_t)(k >> 32) ^ (uint32_t)(k >> 13);
}

static int pair_index(pair_map *m, int32_t a, int32_t b)
{
    uint32_t i;
    for (i = pair_hash(a, b) & m->mask; m->slots[i] >= 0; i = (i + 1) & m->mask)
        if (m->p[m->slots[i]].a == a && m->p[m->slots[i]].b == b) return m->slots[i];
    if (2 * (uint32_t)(m->n + 1) > m->mask + 1) {
        uint32_t cap = 2 * (m->mask + 1);
        free(m->slots);
        m->slots = mallocCheck(cap * sizeof *m->slots);
        memset(m->slots, 0xFF, cap * sizeof *m->slots);
        m->mask = cap - 1;
        for (int k = 0; k < m->n; k++) {
            uint32_t j = pair_hash(m->p[k].a, m->p[k].b) & m->mask;
            while (m->slots[j] >= 0) j = (j + 1) & m->mask;
            m->slots[j] = k;
        }
        for (i = pair_hash(a, b) & m->mask; m->slots[i] >= 0; i = (i + 1) & m->mask) {}
    }
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 4096;
        m->p = reallocCheck(m->p, (size_t)m->cap * sizeof *m->p);
    }
    m->p[m->n] = (pair_t){ a, b, 0, NULL, 0, 0, -1 };
    m->slots[i] = m->n;
    return m->n++;
}

static void pair_add_word(pair_t *p, int w)
{
    if (p->n_words && p->words[p->n_words - 1] == w) return; /* cheap dedup */
    if (p->n_words == p->cap_words) {
        p->cap_words = p->cap_words ? 2 * p->cap_words : 4;
        p->words = reallocCheck(p->words, (size_t)p->cap_words * sizeof *p->words);
    }
    p->words[p->n_words++] = w;
}

/* max-heap of (count, pair): highest count first, then the smaller (a, b) */
typedef struct {
    int64_t count;
    int32_t a, b;
} cand;

static int cand_before(const cand *x, const cand *y)
{
    if (x->count != y->count) return x->count > y->count;
    if (x->a != y->a) return x->a < y->a;
    return x->b < y->b;
}

typedef struct {
    cand *c;
    size_t n, cap;
} cand_heap;

static void heap_push(cand_heap *h, cand e)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 4096;
        h->c = reallocCheck(h->c, h->cap * sizeof *h->c);
    }
    size_t i = h->n++;
    while (i > 0 && cand_before(&e, &h->c[(i - 1) / 2])) {
        h->c[i] = h->c[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->c[i] = e;
}

static cand heap_pop(cand_heap *h)
{
    cand top = h->c[0], last = h->c[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && cand_before(&h->c[c + 1], &h->c[c])) c++;
        if (!cand_before(&h->c[c], &last)) break;
        h->c[i] = h->c[c];
        i = c;
    }
    if (h->n) h->c[i] = last;
    return top;
}

/* --------------------------------------------------------------- output */

static void buf_put(char **buf, size_t *len, size_t *cap, const void *p, size_t n)
{
    if (*len + n > *cap) {
        *cap = 2 * (*len + n) + 4096;
        *buf = reallocCheck(*buf, *cap);
    }
    memcpy(*buf + *len, p, n);
    *len += n;
}

/* The byte-level spelling of bytes p[0..n), as UTF-8 (merges.txt) or as a
 * JSON string body escaped the way Python's json.dumps does (vocab.json). */
static void put_token(char **buf, size_t *len, size_t *cap, const unsigned char *p, size_t n,
                      int json)
{
    for (size_t i = 0; i < n; i++) {
        int c = lmp_bpe_byte_char(p[i]);
        char t[8];
        int k;
        if (json && (c == '"' || c == '\\')) k = snprintf(t, sizeof t, "\\%c", c);
        else if (c < 0x80) t[0] = (char)c, k = 1;
        else if (json) k = snprintf(t, sizeof t, "\\u%04x", c);
        else t[0] = (char)(0xC0 | (c >> 6)), t[1] = (char)(0x80 | (c & 0x3F)), k = 2;
        buf_put(buf, len, cap, t, (size_t)k);
    }
}

/* ---------------------------------------------------------------- train */

int lmp_bpe_train(const char *const *files, int nfiles, int vocab_size, const char *out_dir,
                  int min_count)
{
    if (nfiles < 1) return lmp_error("bpe train: no input files");
    if (vocab_size < 257)
        return lmp_error("bpe train: vocab_size %d is too small (at least 257: 256 bytes and %s)",
                         vocab_size, EOT_TEXT);
    if (min_count < 1) return lmp_error("bpe train: min_count %d must be at least 1", min_count);

    /* 1. count the pre-tokenized words of all files */
    lmp_pretok *pt;
    if (lmp_pretok_new(&pt) != 0) return -1;
    str_map words;
    str_map_init(&words);
    for (int f = 0; f < nfiles; f++) {
        char *text;
        size_t len, pos = 0, s, e;
        if (lmp_read_text_file(files[f], 0, &text, &len) != 0) {
            lmp_pretok_free(pt);
            str_map_free(&words);
            return -1;
        }
        int r, created;
        while ((r = lmp_pretok_next(pt, text, len, &pos, &s, &e)) == 1)
            (*str_map_get(&words, (unsigned char *)text + s, e - s, &created))++;
        free(text);
        if (r < 0) {
            lmp_pretok_free(pt);
            str_map_free(&words);
            return -1;
        }
    }
    lmp_pretok_free(pt);

    /* 2. the 256 byte tokens, in GPT-2's order (by their alphabet code point) */
    int base_id[256], n_tok = 0;
    str_map toks; /* token bytes -> id, to reuse ids of merge results seen before */
    str_map_init(&toks);
    int tok_cap = vocab_size;
    size_t *tok_off = mallocCheck((size_t)tok_cap * sizeof *tok_off);
    size_t *tok_len = mallocCheck((size_t)tok_cap * sizeof *tok_len);
    for (int cp = 0; cp < 256 + 68; cp++)
        for (int b = 0; b < 256; b++)
            if (lmp_bpe_byte_char(b) == cp) {
                unsigned char byte = (unsigned char)b;
                int created;
                *str_map_get(&toks, &byte, 1, &created) = n_tok;
                tok_off[n_tok] = toks.bytes_len - 1;
                tok_len[n_tok] = 1;
                base_id[b] = n_tok++;
            }

    /* 3. the unique words as symbol arrays, and their pair counts */
    int nw = 0;
    size_t total = 0;
    for (size_t i = 0; i <= words.mask; i++) total += words.slots[i].len;
    int *sym = mallocCheck((total + 1) * sizeof *sym);
    size_t *w_off = mallocCheck((words.n + 1) * sizeof *w_off);
    int *w_len = mallocCheck((words.n + 1) * sizeof *w_len);
    int64_t *w_cnt = mallocCheck((words.n + 1) * sizeof *w_cnt);
    pair_map pm = { NULL, 0, 0, mallocCheck(1024 * sizeof(int)), 1023 };
    memset(pm.slots, 0xFF, 1024 * sizeof(int));
    size_t so = 0;
    /* slot order depends only on the words and their hashes: deterministic */
    for (size_t i = 0; i <= words.mask; i++) {
        str_slot *s = &words.slots[i];
        if (!s->len) continue;
        w_off[nw] = so;
        w_len[nw] = (int)s->len;
        w_cnt[nw] = s->val;
        for (size_t k = 0; k < s->len; k++) sym[so + k] = base_id[words.bytes[s->off + k]];
        for (size_t k = 0; k + 1 < s->len; k++) {
            int j = pair_index(&pm, sym[so + k], sym[so + k + 1]); /* may move pm.p */
            pm.p[j].count += s->val;
            pair_t *p = &pm.p[j];
            pair_add_word(p, nw);
        }
        so += s->len;
        nw++;
    }
    str_map_free(&words);
    cand_heap heap = { NULL, 0, 0 };
    for (int k = 0; k < pm.n; k++) heap_push(&heap, (cand){ pm.p[k].count, pm.p[k].a, pm.p[k].b });

    /* 4. merge */
    int n_merges = 0, merge_cap = 1024;
    int32_t *merges = mallocCheck((size_t)merge_cap * 2 * sizeof *merges);
    int *touched = NULL, n_touched = 0, cap_touched = 0;
    while (n_tok < vocab_size - 1 && heap.n) {
        cand best = heap_pop(&heap);
        int pi = pair_index(&pm, best.a, best.b);
        int64_t cur = pm.p[pi].count;
        if (cur != best.count) {
            if (cur > 0 && cur < best.count) heap_push(&heap, (cand){ cur, best.a, best.b });
            continue;
        }
        if (cur < min_count) break;
        int32_t a = best.a, b = best.b;
        /* the new token's bytes and id */
        size_t la = tok_len[a], lb = tok_len[b];
        unsigned char *nb = mallocCheck(la + lb);
        memcpy(nb, toks.bytes + tok_off[a], la);
        memcpy(nb + la, toks.bytes + tok_off[b], lb);
        int created;
        int64_t *idp = str_map_get(&toks, nb, la + lb, &created);
        free(nb);
        int32_t c;
        if (created) {
            c = n_tok++;
            *idp = c;
            tok_off[c] = toks.bytes_len - (la + lb);
            tok_len[c] = la + lb;
        } else {
            c = (int32_t)*idp;
        }
        if (n_merges == merge_cap) {
            merge_cap *= 2;
            merges = reallocCheck(merges, (size_t)merge_cap * 2 * sizeof *merges);
        }
        merges[2 * n_merges] = a;
        merges[2 * n_merges + 1] = b;
        int step = n_merges++;
        /* rewrite the words holding (a, b); the list is detached because the
         * pair array may move while new pairs are added */
        int *wl = pm.p[pi].words, nwl = pm.p[pi].n_words;
        pm.p[pi].words = NULL;
        pm.p[pi].n_words = pm.p[pi].cap_words = 0;
        n_touched = 0;
        for (int q = 0; q < nwl; q++) {
            int w = wl[q];
            int *s = sym + w_off[w], n = w_len[w], found = 0;
            for (int k = 0; k + 1 < n && !found; k++) found = s[k] == a && s[k + 1] == b;
            if (!found) continue;
            for (int k = 0; k + 1 < n; k++) {
                int j = pair_index(&pm, s[k], s[k + 1]);
                pm.p[j].count -= w_cnt[w];
            }
            int o = 0;
            for (int k = 0; k < n;) {
                if (k + 1 < n && s[k] == a && s[k + 1] == b) s[o++] = c, k += 2;
                else s[o++] = s[k++];
            }
            w_len[w] = n = o;
            for (int k = 0; k + 1 < n; k++) {
                int j = pair_index(&pm, s[k], s[k + 1]);
                pair_t *p = &pm.p[j];
                p->count += w_cnt[w];
                if (s[k] == c || s[k + 1] == c) {
                    pair_add_word(p, w);
                    if (p->stamp != step) {
                        p->stamp = step;
                        if (n_touched == cap_touched)
                            touched = reallocCheck(touched, (size_t)(cap_touched = cap_touched ? 2 * cap_touched : 256) * sizeof *touched);
                        touched[n_touched++] = j;
                    }
                }
            }
        }
        free(wl);
        for (int k = 0; k < n_touched; k++) {
            pair_t *p = &pm.p[touched[k]];
            if (p->count > 0) heap_push(&heap, (cand){ p->count, p->a, p->b });
        }
    }

    /* 5. write merges.txt and vocab.json */
    char *buf = NULL;
    size_t len = 0, cap = 0;
    buf_put(&buf, &len, &cap, "#version: 0.2\n", 14);
    for (int r = 0; r < n_merges; r++) {
        int32_t a = merges[2 * r], b = merges[2 * r + 1];
        put_token(&buf, &len, &cap, toks.bytes + tok_off[a], tok_len[a], 0);
        buf_put(&buf, &len, &cap, " ", 1);
        put_token(&buf, &len, &cap, toks.bytes + tok_off[b], tok_len[b], 0);
        buf_put(&buf, &len, &cap, "\n", 1);
    }
    int rc = -1;
    char *mpath = lmp_strfmt("%s/merges.txt", out_dir), *vpath = lmp_strfmt("%s/vocab.json", out_dir);
    if (lmp_mkdirs(out_dir) != 0 || lmp_write_file_atomic(mpath, buf, len) != 0) goto done;
    len = 0;
    buf_put(&buf, &len, &cap, "{", 1);
    for (int id = 0; id <= n_tok; id++) {
        char num[32];
        buf_put(&buf, &len, &cap, id ? ", \"" : "\"", id ? 3 : 1);
        if (id < n_tok) put_token(&buf, &len, &cap, toks.bytes + tok_off[id], tok_len[id], 1);
        else buf_put(&buf, &len, &cap, EOT_TEXT, strlen(EOT_TEXT));
        int k = snprintf(num, sizeof num, "\": %d", id);
        buf_put(&buf, &len, &cap, num, (size_t)k);
    }
    buf_put(&buf, &len, &cap, "}", 1);
    if (lmp_write_file_atomic(vpath, buf, len) != 0) goto done;
    rc = 0;
done:
    free(mpath);
    free(vpath);
    free(buf);
    free(touched);
    free(merges);
    for (int k = 0; k < pm.n; k++) free(pm.p[k].words);
    free(pm.p);
    free(pm.slots);
    free(heap.c);
    free(sym);
    free(w_off);
    free(w_len);
    free(w_cnt);
    free(tok_off);
    free(tok_len);
    str_map_free(&toks);
    return rc;
}
