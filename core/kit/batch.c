/*
 * batch.c — see batch.h.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "dist.h"
#include "util.h"

void lmp_batch_fill(lmp_batch *b, const lmp_dataset *d, const lmp_split *split, const int *idx, int n, int fixed_T,
                    int max_T)
{
    int T = fixed_T;
    if (T <= 0) {
        T = 1;
        for (int i = 0; i < n; i++)
            if (split->len[idx[i]] > T) T = split->len[idx[i]];
    }
    if (max_T > 0 && T > max_T) T = max_T;
    if (n > b->cap_B || n * T > b->cap_B * b->cap_T) {
        int cB = n > b->cap_B ? n : b->cap_B, cT = T > b->cap_T ? T : b->cap_T;
        b->ids = reallocCheck(b->ids, (size_t)cB * (size_t)cT * sizeof *b->ids);
        b->len = reallocCheck(b->len, (size_t)cB * sizeof *b->len);
        b->labels = reallocCheck(b->labels, (size_t)cB * sizeof *b->labels);
        b->cap_B = cB, b->cap_T = cT;
    }
    b->B = n, b->T = T;
    for (int i = 0; i < n; i++) {
        int r = idx[i], l = split->len[r] < T ? split->len[r] : T;
        const int *src = split->ids[r] + (d->truncate_left ? split->len[r] - l : 0);
        memcpy(b->ids + (size_t)i * T, src, (size_t)l * sizeof(int));
        for (int t = l; t < T; t++) b->ids[(size_t)i * T + t] = d->pad_id;
        b->len[i] = l;
        b->labels[i] = split->label[r];
    }
}

static void shuffle_ints(int *idx, int n, lmp_rng *rng)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(lmp_rng_u64(rng) % (uint64_t)(i + 1));
        int t = idx[i];
        idx[i] = idx[j], idx[j] = t;
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void lmp_batch_order(const lmp_split *split, int *order, int batch, int group, int max_T, lmp_rng *rng)
{
    int n = split->n;
    shuffle_ints(order, n, rng);
    if (group <= 0 || batch <= 1 || n <= batch) return;
    /* sort each chunk longest first; ties keep the shuffled order (the key's
     * low half), so the result depends on the seed alone, not on qsort */
    long chunk = (long)group * batch;
    uint64_t *key = mallocCheck((size_t)(chunk < n ? chunk : n) * sizeof *key);
    int *tmp = mallocCheck((size_t)n * sizeof *tmp);
    for (long c0 = 0; c0 < n; c0 += chunk) {
        int m = (int)(n - c0 < chunk ? n - c0 : chunk);
        for (int i = 0; i < m; i++) {
            int len = split->len[order[c0 + i]];
            if (max_T > 0 && len > max_T) len = max_T;
            key[i] = (uint64_t)(uint32_t)(INT32_MAX - len) << 32 | (uint32_t)i;
        }
        qsort(key, (size_t)m, sizeof *key, cmp_u64);
        for (int i = 0; i < m; i++) tmp[c0 + i] = order[c0 + (uint32_t)key[i]];
    }
    free(key);
    /* the full batches in a random order; a last partial one stays last */
    int full = n / batch;
    int *perm = mallocCheck((size_t)full * sizeof *perm);
    for (int i = 0; i < full; i++) perm[i] = i;
    shuffle_ints(perm, full, rng);
    for (int i = 0; i < full; i++)
        memcpy(order + (size_t)i * batch, tmp + (size_t)perm[i] * batch, (size_t)batch * sizeof *order);
    memcpy(order + (size_t)full * batch, tmp + (size_t)full * batch, (size_t)(n - full * batch) * sizeof *order);
    free(perm), free(tmp);
}

int lmp_batch_count_cut(const lmp_split *split, int max_T)
{
    int cut = 0;
    for (int i = 0; i < split->n && max_T > 0; i++) cut += split->len[i] > max_T;
    return cut;
}

void lmp_batch_free(lmp_batch *b)
{
    free(b->ids);
    free(b->len);
    free(b->labels);
    memset(b, 0, sizeof *b);
}

int lmp_classifier_check_data(const lmp_classifier *c, const lmp_dataset *d)
{
    if (!d->tokenized)
        return lmp_error("dataset '%s' is not tokenized: put a tokenizer stage before this one", d->name);
    if (c->num_labels != d->num_labels)
        return lmp_error("the %s classifier has %d labels but dataset '%s' has %d", c->kind, c->num_labels,
                         d->name, d->num_labels);
    if (c->tokenizer_digest[0] && strcmp(c->tokenizer_digest, d->tokenizer_digest) != 0)
        return lmp_error("the %s classifier was built for another tokenizer (vocabulary %.12s) than dataset '%s' "
                         "(vocabulary %.12s)",
                         c->kind, c->tokenizer_digest, d->name, d->tokenizer_digest);
    return 0;
}

int lmp_classifier_predict(lmp_classifier *c, const lmp_dataset *d, const lmp_split *split, int batch,
                           float *logits)
{
    if (lmp_classifier_check_data(c, d) != 0) return -1;
    /* under mpirun each rank predicts its shard of the rows, and a sum
     * gathers them (the other rows are zero on each rank) */
    int ranks = lmp_dist_size();
    long lo, hi;
    lmp_dist_shard(split->n, &lo, &hi);
    if (ranks > 1) memset(logits, 0, (size_t)split->n * (size_t)c->num_labels * sizeof *logits);
    lmp_batch b = {0};
    int *idx = mallocCheck((size_t)(batch > 0 ? batch : 1) * sizeof *idx);
    int rc = 0;
    for (int start = (int)lo; start < hi && rc == 0; start += batch) {
        int n = hi - start < batch ? (int)hi - start : batch;
        for (int i = 0; i < n; i++) idx[i] = start + i;
        lmp_batch_fill(&b, d, split, idx, n, 0, c->max_len);
        rc = c->forward(c, b.ids, b.len, b.B, b.T, logits + (size_t)start * c->num_labels, 0);
        /* one rank leaving early would leave the others in the sum: with
         * several ranks the stage notices the interruption afterwards */
        if (ranks == 1 && lmp_interrupted()) rc = lmp_error("interrupted");
    }
    free(idx);
    lmp_batch_free(&b);
    if (rc == 0) lmp_dist_sum_floats(logits, (size_t)split->n * (size_t)c->num_labels);
    return rc;
}
