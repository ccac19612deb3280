/*
 * blasenv.h — settings that OpenBLAS and the OpenMP runtime read from the
 * environment only when they load, applied by re-executing the lmpipe
 * command once with them set (core/cli/main.c calls this first thing).
 */
#ifndef LMP_BLASENV_H
#define LMP_BLASENV_H

/* If the environment lacks them, set
 *   OMP_WAIT_POLICY=PASSIVE   idle OpenMP threads sleep instead of spinning:
 *                             spinning threads steal the cores OpenBLAS's own
 *                             threads need (on 2 busy cores a training step
 *                             of the learning test ran 10x slower);
 *   OPENBLAS_CORETYPE         when OpenBLAS fell back to a generic SSE kernel
 *                             on a CPU it does not know (0.3.21 on recent
 *                             Xeons picks "Prescott") but the CPU has AVX-512
 *                             (-> SkylakeX) or AVX2+FMA (-> Haswell): sgemm
 *                             is 5-9x faster (bench/sgemm);
 * and execv /proc/self/exe with the same argv.  Set LMPIPE_NO_REEXEC=1 to
 * turn this off.  Returns only when nothing was changed or exec failed. */
void lmp_blas_env_reexec(char **argv);
/* The kernel family OpenBLAS is using ("SkylakeX", "Prescott", ...). */
const char *lmp_blas_corename(void);

#endif
