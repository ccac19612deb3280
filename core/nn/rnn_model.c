/*
 * rnn_model.c — the recurrent model's configuration (rnn_model.h): cell and
 * pooling names, range checks, and the tensor list with PyTorch's names and
 * shapes.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "rnn_model.h"
#include "util.h"

static const char *const cell_names[] = {"elman", "gru", "lstm"};
static const char *const pool_names[] = {"last", "mean", "max"};

const char *lmp_rnn_cell_name(int cell) { return cell >= 0 && cell < 3 ? cell_names[cell] : "?"; }
const char *lmp_rnn_pooling_name(int pooling) { return pooling >= 0 && pooling < 3 ? pool_names[pooling] : "?"; }

int lmp_rnn_cell_parse(const char *name, int *cell)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, cell_names[i]) == 0) return *cell = i, 0;
    return lmp_error("unknown rnn cell '%s' (elman, gru or lstm)", name);
}

int lmp_rnn_pooling_parse(const char *name, int *pooling)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, pool_names[i]) == 0) return *pooling = i, 0;
    return lmp_error("unknown rnn pooling '%s' (last, mean or max)", name);
}

int lmp_rnn_gates(int cell) { return cell == LMP_RNN_GRU ? 3 : cell == LMP_RNN_LSTM ? 4 : 1; }

int lmp_rnn_config_check(const lmp_rnn_config *c)
{
    if (c->cell < 0 || c->cell > 2) return lmp_error("rnn: cell %d is not elman, gru or lstm", c->cell);
    if (c->pooling < 0 || c->pooling > 2) return lmp_error("rnn: pooling %d is not last, mean or max", c->pooling);
    if (c->vocab < 1) return lmp_error("rnn: vocab must be >= 1 (got %d)", c->vocab);
    if (c->embed < 1 || c->embed > 65536) return lmp_error("rnn: embed must be in [1, 65536] (got %d)", c->embed);
    if (c->hidden < 1 || c->hidden > 65536) return lmp_error("rnn: hidden must be in [1, 65536] (got %d)", c->hidden);
    if (c->layers < 1 || c->layers > RNN_MAX_LAYERS)
        return lmp_error("rnn: layers must be in [1, %d] (got %d)", RNN_MAX_LAYERS, c->layers);
    if (c->bidirectional != 0 && c->bidirectional != 1)
        return lmp_error("rnn: bidirectional must be 0 or 1 (got %d)", c->bidirectional);
    if (c->num_labels < 1 || c->num_labels > 32) return lmp_error("rnn: num_labels must be in [1, 32] (got %d)", c->num_labels);
    if (!(c->dropout >= 0 && c->dropout < 1)) return lmp_error("rnn: dropout must be in [0, 1) (got %g)", c->dropout);
    return 0;
}

int lmp_rnn_num_tensors(const lmp_rnn_config *c) { return 3 + 4 * c->layers * (1 + c->bidirectional); }

size_t lmp_rnn_tensor_info(const lmp_rnn_config *c, int i, char *name, size_t cap, int64_t shape[2], int *ndim)
{
    int dirs = 1 + c->bidirectional, H = c->hidden, GH = lmp_rnn_gates(c->cell) * H, D = H * dirs;
    int nl = 4 * c->layers * dirs;
    if (i == 0) {
        snprintf(name, cap, "embedding.weight");
        shape[0] = c->vocab, shape[1] = c->embed, *ndim = 2;
    } else if (i <= nl) {
        static const char *const kinds[] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
        int k = (i - 1) % 4, ld = (i - 1) / 4, l = ld / dirs, d = ld % dirs;
        snprintf(name, cap, "rnn.%s_l%d%s", kinds[k], l, d ? "_reverse" : "");
        shape[0] = GH;
        shape[1] = k == 0 ? (l == 0 ? c->embed : D) : H;
        *ndim = k < 2 ? 2 : 1;
    } else if (i == nl + 1) {
        snprintf(name, cap, "head.weight");
        shape[0] = c->num_labels, shape[1] = D, *ndim = 2;
    } else {
        snprintf(name, cap, "head.bias");
        shape[0] = c->num_labels, *ndim = 1;
    }
    return (size_t)shape[0] * (*ndim == 2 ? (size_t)shape[1] : 1);
}
