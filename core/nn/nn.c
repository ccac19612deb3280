/*
 * nn.c — the float build of the kernels declared in nn.h.  The bodies are in
 * nn_impl.h so that tests/check_nn.c can compile the same code in double.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "nn.h"

#define NN_REAL float
#define NN_FN(name) lmp_nn_##name
#define NN_GEMM cblas_sgemm
#define NN_GEMV cblas_sgemv
#define NN_GELU_FAST /* the vectorisable float GELU */
#include "nn_impl.h"

size_t lmp_nn_first_nonfinite(const float *x, size_t n)
{
    enum { BLOCK = 4096 };
    for (size_t b = 0; b < n; b += BLOCK) {
        const float *p = x + b;
        size_t m = n - b < BLOCK ? n - b : BLOCK;
        uint32_t bad = 0;
        #pragma omp simd reduction(|:bad)
        for (size_t i = 0; i < m; i++) {
            uint32_t u;
            memcpy(&u, &p[i], sizeof u); /* exponent all ones: NaN or infinity */
            bad |= (u & 0x7fffffffu) >= 0x7f800000u;
        }
        if (bad)
            for (size_t i = 0; i < m; i++)
                if (!isfinite(p[i])) return b + i;
    }
    return n;
}
