/*
 * rnn_model.h — the recurrent classifier's model, as numerics: cells,
 * configuration and the tensors with their PyTorch names and shapes.  The
 * forward and backward passes are rnn_impl.h; the classifier object built
 * on them (kind "rnn", save and load) is core/kit/rnn.h.
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
 */
#ifndef LMP_RNN_MODEL_H
#define LMP_RNN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Layers of a stack (the work space keeps per-layer arrays of this size). */
#define RNN_MAX_LAYERS 16

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

#ifdef __cplusplus
}
#endif

#endif
