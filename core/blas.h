/*
 * blas.h — making OpenBLAS use the right kernels on this CPU.
 *
 * OpenBLAS picks its kernels when the library loads, from the CPU model it
 * recognises.  Debian 12's OpenBLAS 0.3.21 does not know recent Intel CPUs
 * (e.g. family 6 model 207) and falls back to generic "Prescott" kernels, 8x
 * slower than its AVX-512 ones (bench/sgemm).  The only switch is the
 * environment variable OPENBLAS_CORETYPE, read at load time — so the lmpipe
 * command sets it and re-executes itself once, when it is unset, OpenBLAS
 * chose the fallback, and the CPU has AVX-512 (SkylakeX kernels) or AVX2
 * (Haswell kernels).  A user's own OPENBLAS_CORETYPE is never overridden.
 */
#ifndef LMP_BLAS_H
#define LMP_BLAS_H

/* Returns only if no re-exec was needed or possible. */
void lmp_blas_select_kernels(char **argv);
/* The kernel family OpenBLAS is using ("SkylakeX", "Prescott", ...). */
const char *lmp_blas_corename(void);

#endif
