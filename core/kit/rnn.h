/*
 * rnn.h — the recurrent sequence classifier (the course study's student):
 * token embedding, a stack of Elman / GRU / LSTM layers (optionally
 * bidirectional), pooling over the real tokens of each row, a linear head.
 * Classifier kind "rnn" (core/kit/classifier.h), saved and loaded as a folder.
 *
 * Cells, configuration and tensors: rnn_model.h (core/nn).
 *
 * Padding: rows are packed as PyTorch's pack_padded_sequence packs them
 * (sorted by length, at step t only the rows longer than t), so a padded
 * position is never computed and never updates a state: a padded batch gives
 * what running each row alone gives.  Pooling over real tokens only:
 *   last  the forward state at len - 1 (bidirectional: and the backward
 *         state at position 0, i.e. each direction's final state)
 *   mean  the mean of the top layer's outputs over t < len
 *   max   their elementwise maximum over t < len
 * Dropout (training only): on each layer's output that feeds another layer
 * (as nn.GRU's dropout) and on the pooled features before the head.
 *
 * Saved folder: classifier.json {"kind": "rnn", "num_labels",
 * "tokenizer_digest", "config": {...}} and model.safetensors (the tensors
 * of rnn_model.h, F32, loadable by torch's load_state_dict).
 */
#ifndef LMP_RNN_H
#define LMP_RNN_H

#include <stddef.h>
#include <stdint.h>

#include "classifier.h"
#include "rnn_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A classifier with PyTorch's default initialisation drawn from `seed`:
 * embedding N(0, 1); recurrent weights and biases U(-1/sqrt(H), 1/sqrt(H));
 * head U(-1/sqrt(D), 1/sqrt(D)), D = H * dirs.  Dropout masks come from a
 * generator seeded with `seed` too. */
int lmp_rnn_classifier_new(const lmp_rnn_config *cfg, uint64_t seed, lmp_classifier **out);
/* The configuration and tensor i (lmp_rnn_tensor_info's order) of an RNN
 * classifier; NULL when c is not one. */
const lmp_rnn_config *lmp_rnn_classifier_config(const lmp_classifier *c);
float *lmp_rnn_classifier_tensor(lmp_classifier *c, int i);
/* Initialise the embedding from another model's token embedding
 * src[src_vocab, src_dim] (GPT-2's wte): row v of the student is row v of src
 * (src_vocab must be >= the student's vocabulary), multiplied by a fixed
 * random projection P[src_dim, E] with entries N(0, 1/E) (seed `seed`) when
 * src_dim != E, which keeps norms and angles approximately; copied as is when
 * the sizes agree. */
int lmp_rnn_classifier_init_embedding(lmp_classifier *c, const float *src, int src_vocab, int src_dim,
                                      uint64_t seed);
/* Load a folder written by c->save. */
int lmp_rnn_classifier_load(const char *dir, lmp_classifier **out);

#ifdef __cplusplus
}
#endif

#endif
