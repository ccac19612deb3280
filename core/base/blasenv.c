/*
 * blasenv.c — start-up environment for OpenBLAS and OpenMP (see blasenv.h).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "blasenv.h"

/* OpenBLAS's own call; weak, so another BLAS links too (then nothing is tuned). */
extern char *openblas_get_corename(void) __attribute__((weak));

/* OpenBLAS's kernels older than AVX: what it falls back to for an unknown CPU. */
static int generic_core(const char *name)
{
    static const char *const old[] = { "Prescott", "Core2", "Penryn", "Dunnington", "Nehalem",
                                       "Atom", "Katmai", "Coppermine", "Northwood", "Banias",
                                       "Opteron", "Barcelona", NULL };
    for (int i = 0; old[i]; i++)
        if (strcasecmp(name, old[i]) == 0) return 1;
    return 0;
}

const char *lmp_blas_corename(void)
{
    return openblas_get_corename ? openblas_get_corename() : "not OpenBLAS";
}

void lmp_blas_env_reexec(char **argv)
{
    const char *off = getenv("LMPIPE_NO_REEXEC");
    if (off && *off && strcmp(off, "0") != 0) return;
    int changed = 0;
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
        changed = 1;
    }
    if (!getenv("OPENBLAS_CORETYPE") && openblas_get_corename) {
        const char *core = openblas_get_corename();
        const char *want = NULL;
        __builtin_cpu_init();
        if (core && generic_core(core)) {
            if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
                want = "SkylakeX";
            else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
                want = "Haswell";
        }
        if (want) {
            setenv("OPENBLAS_CORETYPE", want, 1);
            changed = 1;
        }
    }
    if (!changed) return;
    setenv("LMPIPE_NO_REEXEC", "1", 1); /* once */
    execv("/proc/self/exe", argv);
    /* exec failed (no /proc): carry on with the libraries as they started */
}
