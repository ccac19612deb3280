/*
 * nn.c — the float build of the kernels declared in nn.h.  The bodies are in
 * nn_impl.h so that tests/check_nn.c can compile the same code in double.
 */
#include "config.h"

#include "nn.h"

#define NN_REAL float
#define NN_FN(name) name
#define NN_GEMM cblas_sgemm
#define NN_GEMV cblas_sgemv
#define NN_GELU_FAST /* the vectorisable float GELU */
#include "nn_impl.h"
