/*
 * rnn.h — the recurrent sequence classifier (the course study's student):
 * token embedding, a stack of Elman / GRU / LSTM layers (optionally
 * bidirectional), pooling over the real tokens of each row, a linear head.
 * Classifier kind "rnn" (core/kit/classifier.h), saved and loaded as a folder.
 *
 * The cells follow PyTorch's nn.RNN (tanh), nn.GRU and nn.LSTM exactly,
 * including the gate orders and the weight layout, so a state_dict copies
 * over tensor for tensor:
 *   elman  h' = tanh(W_ih x + b_ih + W_hh h + b_hh)                   (G = 1)
 *   gru    r = s(.. r rows), z = s(.. z rows),                         (G = 3: r, z, n)
 *          n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = (1 - z) n + z h
 *   lstm   i, f, o = s(..), g = tanh(..),  c' = f c + i g,  h' = o tanh(c')  (G = 4: i, f, g, o)
 * Tensors, by their PyTorch names ("rnn." is the nn.RNN/GRU/LSTM module,
 * suffix _reverse for the backward direction of a bidirectional layer):
 *   embedding.weight         [V, E]
 *   rnn.weight_ih_l{k}       [G*H, in]   in = E for k = 0, else H * dirs
 *   rnn.weight_hh_l{k}       [G*H, H]
 *   rnn.bias_ih_l{k}, rnn.bias_hh_l{k}   [G*H]
 *   head.weight [L, H * dirs], head.bias [L]   (nn.Linear)
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
 * above, F32, loadable by torch's load_state_dict).
 */
#ifndef LMP_RNN_H
#define LMP_RNN_H

#include <stddef.h>
#include <stdint.h>

#include "classifier.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { LMP_RNN_ELMAN = 0, LMP_RNN_GRU, LMP_RNN_LSTM } lmp_rnn_cell;
typedef enum { LMP_RNN_POOL_LAST = 0, LMP_RNN_POOL_MEAN, LMP_RNN_POOL_MAX } lmp_rnn_pooling;

typedef struct {
    int cell;          /* lmp_rnn_cell */
    int vocab;         /* V: embedding rows */
    int embed;         /* E */
    int hidden;        /* H */
    int layers;
    int bidirectional; /* 0 or 1 */
    int pooling;       /* lmp_rnn_pooling */
    int num_labels;    /* L */
    float dropout;     /* [0, 1) */
} lmp_rnn_config;

/* Names as written in pipelines and classifier.json: "elman" | "gru" |
 * "lstm"; "last" | "mean" | "max".  Parsing an unknown name: -1 and an error
 * listing the accepted ones. */
const char *lmp_rnn_cell_name(int cell);
const char *lmp_rnn_pooling_name(int pooling);
int lmp_rnn_cell_parse(const char *name, int *cell);
int lmp_rnn_pooling_parse(const char *name, int *pooling);

/* Gates per cell: 1, 3, 4. */
int lmp_rnn_gates(int cell);
/* Ranges: vocab, embed, hidden >= 1, layers in [1, 16], num_labels in [1, 32],
 * dropout in [0, 1).  The message names the field. */
int lmp_rnn_config_check(const lmp_rnn_config *cfg);

/* The parameter tensors in a fixed order: embedding, then for each layer and
 * direction weight_ih, weight_hh, bias_ih, bias_hh, then head weight, bias. */
int lmp_rnn_num_tensors(const lmp_rnn_config *cfg);
/* Tensor i's PyTorch name (into name[cap]) and shape (ndim 1 or 2); returns
 * its element count. */
size_t lmp_rnn_tensor_info(const lmp_rnn_config *cfg, int i, char *name, size_t cap, int64_t shape[2], int *ndim);

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
