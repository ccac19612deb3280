/*
 * dataset.h — labelled text datasets (artifact type "dataset"): named splits
 * of sentences with integer labels, and, once a tokenizer stage has run,
 * their token ids.  CoLA is read by the cola stage into this form.
 */
#ifndef LMP_DATASET_H
#define LMP_DATASET_H

#include <stdint.h>

#include "lmpipe.h"

typedef struct {
    char *name;   /* "train", "dev", "ood", ... */
    int n;        /* examples */
    char **text;  /* [n] UTF-8 sentences */
    int *label;   /* [n] in [0, num_labels) */
    char **source; /* [n] provenance (CoLA's source code column), may be NULL */
    /* filled by a tokenizer stage (NULL before): */
    int **ids;    /* [n] token ids, ids[i] has len[i] entries */
    int *len;     /* [n] */
} lmp_split;

typedef struct {
    char *name;          /* "cola" */
    int num_labels;
    char **label_names;  /* [num_labels] */
    lmp_split *splits;
    int nsplits;
    /* tokenization (valid when tokenized != 0) */
    int tokenized;
    char tokenizer_digest[65]; /* which vocabulary produced the ids */
    int vocab_size;
    int pad_id;
    int max_len;
    char digest[65];     /* content hash: texts, labels and ids */
    int truncate_left;   /* rows longer than max_len lost their start, not their end
                          * (gpt2-bpe truncation=left); a later cut to a shorter
                          * length (a classifier's context, train's max_len) cuts
                          * the same end (core/kit/batch.c).  Last, so the fields
                          * before keep their offsets for plugins built earlier */
} lmp_dataset;

extern const lmp_type lmp_type_dataset;

lmp_split *lmp_dataset_split(lmp_dataset *d, const char *name); /* NULL if absent */
lmp_dataset *lmp_dataset_new(const char *name, int num_labels);
lmp_split *lmp_dataset_add_split(lmp_dataset *d, const char *name);
void lmp_split_add(lmp_split *s, const char *text, int label, const char *source);
/* A deep copy (a tokenizer stage tokenizes a copy: artifacts are values). */
lmp_dataset *lmp_dataset_copy(const lmp_dataset *d);
/* Recompute d->digest from the content. */
void lmp_dataset_update_digest(lmp_dataset *d);
void lmp_dataset_free(void *d);
int lmp_dataset_save(const void *d, const char *path);
int lmp_dataset_load(const char *path, void **d);

/* Read a CoLA TSV file (4 tab-separated columns, no header: source, label,
 * original mark, sentence; no quote handling) into `split`.  A malformed row
 * (column count, label not 0/1, invalid UTF-8, empty sentence) rejects the
 * whole file with an error naming file and line. */
int lmp_cola_read(const char *path, lmp_split *split);

#endif
