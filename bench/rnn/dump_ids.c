/*
 * dump_ids.c — the PyTorch peer's input for bench/rnn: a CoLA TSV file
 * tokenized with GPT-2's BPE exactly as the gpt2-bpe stage does it (cut on
 * the right to max_len), one example per line: "label n id_1 ... id_n".
 *
 *   dump_ids COLA.tsv VOCAB_DIR MAX_LEN OUT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "tokenizer.h"
#include "util.h"

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: dump_ids COLA.tsv VOCAB_DIR MAX_LEN OUT\n");
        return 2;
    }
    lmp_dataset *d = lmp_dataset_new("cola", 2);
    lmp_split *s = lmp_dataset_add_split(d, "train");
    lmp_tokenizer *tok;
    if (lmp_cola_read(argv[1], s) != 0 || lmp_tokenizer_load_dir(argv[2], &tok) != 0) {
        fprintf(stderr, "dump_ids: %s\n", lmp_errmsg());
        return 1;
    }
    int max_len = atoi(argv[3]);
    FILE *f = fopen(argv[4], "w");
    if (!f) return perror(argv[4]), 1;
    for (int i = 0; i < s->n; i++) {
        int *ids;
        size_t n;
        if (lmp_bpe_encode(tok->bpe, s->text[i], strlen(s->text[i]), 0, &ids, &n) != 0) {
            fprintf(stderr, "dump_ids: example %d: %s\n", i + 1, lmp_errmsg());
            return 1;
        }
        if ((int)n > max_len) n = (size_t)max_len;
        fprintf(f, "%d %zu", s->label[i], n);
        for (size_t k = 0; k < n; k++) fprintf(f, " %d", ids[k]);
        fputc('\n', f);
        free(ids);
    }
    fclose(f);
    lmp_tokenizer_free(tok);
    lmp_dataset_free(d);
    return 0;
}
