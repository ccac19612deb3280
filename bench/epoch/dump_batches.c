/*
 * dump_batches.c — the PyTorch peer's input for bench/epoch: CoLA's
 * training split tokenized with GPT-2's BPE as the gpt2-bpe stage does it
 * (cut on the right to max_len), and the batches of one epoch in the order
 * lmpipe's train stage takes them — the same seed derivation and the same
 * lmp_batch_order (shuffle, then group_by_length) as core/kit/cls_train.c — so both
 * sides train on identical batches.
 *
 *   dump_batches COLA.tsv VOCAB_DIR MAX_LEN SEED BATCH GROUP IDS_OUT BATCHES_OUT
 *
 * IDS_OUT: one example per line, "label n id_1 ... id_n", in file order.
 * BATCHES_OUT: one batch per line, the row indices of IDS_OUT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "dataset.h"
#include "tokenizer.h"
#include "util.h"

int main(int argc, char **argv)
{
    if (argc != 9) {
        fprintf(stderr, "usage: dump_batches COLA.tsv VOCAB_DIR MAX_LEN SEED BATCH GROUP IDS_OUT BATCHES_OUT\n");
        return 2;
    }
    lmp_dataset *d = lmp_dataset_new("cola", 2);
    lmp_split *s = lmp_dataset_add_split(d, "train");
    lmp_tokenizer *tok;
    if (lmp_cola_read(argv[1], s) != 0 || lmp_tokenizer_load_dir(argv[2], &tok) != 0) {
        fprintf(stderr, "dump_batches: %s\n", lmp_errmsg());
        return 1;
    }
    int max_len = atoi(argv[3]), batch = atoi(argv[5]), group = atoi(argv[6]);
    uint64_t seed = strtoull(argv[4], NULL, 10);
    FILE *f = fopen(argv[7], "w");
    if (!f) return perror(argv[7]), 1;
    s->ids = mallocCheck((size_t)s->n * sizeof *s->ids);
    s->len = mallocCheck((size_t)s->n * sizeof *s->len);
    for (int i = 0; i < s->n; i++) {
        size_t n;
        if (lmp_bpe_encode(tok->bpe, s->text[i], strlen(s->text[i]), 0, &s->ids[i], &n) != 0) {
            fprintf(stderr, "dump_batches: example %d: %s\n", i + 1, lmp_errmsg());
            return 1;
        }
        if ((int)n > max_len) n = (size_t)max_len;
        s->len[i] = (int)n;
        fprintf(f, "%d %zu", s->label[i], n);
        for (size_t k = 0; k < n; k++) fprintf(f, " %d", s->ids[i][k]);
        fputc('\n', f);
    }
    fclose(f);
    /* core/kit/cls_train.c: the epoch's order from the run's seed */
    lmp_rng rng;
    lmp_rng_seed(&rng, seed ^ 0x7472616e);
    int *order = mallocCheck((size_t)s->n * sizeof *order);
    for (int i = 0; i < s->n; i++) order[i] = i;
    lmp_batch_order(s, order, batch, group, max_len, &rng);
    if (!(f = fopen(argv[8], "w"))) return perror(argv[8]), 1;
    for (int b0 = 0; b0 < s->n; b0 += batch) {
        for (int i = b0; i < s->n && i < b0 + batch; i++) fprintf(f, i > b0 ? " %d" : "%d", order[i]);
        fputc('\n', f);
    }
    fclose(f);
    free(order);
    lmp_tokenizer_free(tok);
    lmp_dataset_free(d);
    return 0;
}
