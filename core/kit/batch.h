/*
 * batch.h — turning tokenized dataset rows into classifier batches, and
 * running a classifier over a whole split.  Shared by the train, kd and
 * evaluate stages, so every one pads and truncates the same way.
 */
#ifndef LMP_BATCH_H
#define LMP_BATCH_H

#include "classifier.h"
#include "dataset.h"
#include "util.h"

typedef struct {
    int B, T;     /* rows, padded length */
    int *ids;     /* [B, T], right-padded with pad_id */
    int *len;     /* [B] real lengths (<= T) */
    int *labels;  /* [B] */
    int cap_B, cap_T;
} lmp_batch;

/* Fill `b` with rows idx[0..n) of `split`, a split of d, padded with
 * d->pad_id.  T is the longest row (dynamic padding) or `fixed_T` when > 0
 * (pad or cut to exactly fixed_T, as the original study's padding to 20).
 * Rows longer than max_T (> 0) are cut.  A row is cut at the end the
 * tokenizer cut (d->truncate_left: its last T tokens are kept), so a model
 * whose context is shorter than the tokenizer's max_len sees the part of the
 * sentence the user asked for. */
void lmp_batch_fill(lmp_batch *b, const lmp_dataset *d, const lmp_split *split, const int *idx, int n, int fixed_T,
                    int max_T);
/* One training epoch's order of the rows of `split`, in place: order[] (a
 * permutation of 0..n) is shuffled with rng; with group > 0 the rows are
 * then grouped by length as Hugging Face Trainer's group_by_length does:
 * sorted, longest first, within chunks of group * batch rows (lengths cut
 * to max_T > 0, as lmp_batch_fill cuts them), and the chunks' full batches
 * shuffled; a last, partial batch stays last.  Each batch then holds rows
 * of similar length, so dynamic padding computes little padding, while the
 * epoch still sees every row once in a random order of batches. */
void lmp_batch_order(const lmp_split *split, int *order, int batch, int group, int max_T, lmp_rng *rng);
/* How many rows of `split` are longer than max_T (> 0), i.e. lmp_batch_fill cuts. */
int lmp_batch_count_cut(const lmp_split *split, int max_T);
void lmp_batch_free(lmp_batch *b);

/* logits[n, num_labels] for every row of `split`, in order, `batch` rows at a
 * time (eval mode).  Checks up front that the dataset is tokenized, that the
 * label counts agree, and that the tokenizers agree. */
int lmp_classifier_predict(lmp_classifier *c, const lmp_dataset *d, const lmp_split *split, int batch,
                           float *logits);
/* The checks lmp_classifier_predict does, for stages that batch themselves. */
int lmp_classifier_check_data(const lmp_classifier *c, const lmp_dataset *d);

#endif
