/*
 * dist.c — the ranks and collectives of dist.h, over MPI when built with
 * --with-mpi (HAVE_MPI), a single rank otherwise.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "dist.h"
#include "util.h"

#ifdef HAVE_MPI
#include <mpi.h>

static int started;  /* lmp_dist_init called MPI_Init */
static int solo;     /* lmp_dist_solo(1) */
static int world_rank, world_size = 1;
static double reduce_seconds;

/* mpirun (Open MPI, MPICH/Hydra, PMIx launchers) leaves one of these. */
static int launched_by_mpirun(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS", NULL};
    for (int i = 0; vars[i]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

void lmp_dist_init(int *argc, char ***argv)
{
    if (started || !launched_by_mpirun()) return;
    if (MPI_Init(argc, argv) != MPI_SUCCESS) {
        fprintf(stderr, "lmpipe: MPI_Init failed\n");
        exit(1);
    }
    started = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);
}

void lmp_dist_finalize(void)
{
    if (started) MPI_Finalize();
    started = 0;
}

static int active(void) { return started && !solo && world_size > 1; }

int lmp_dist_rank(void) { return active() ? world_rank : 0; }
int lmp_dist_size(void) { return active() ? world_size : 1; }
int lmp_dist_world(void) { return started ? world_size : 1; }
int lmp_dist_world_rank(void) { return started ? world_rank : 0; }
int lmp_dist_writer(void) { return lmp_dist_rank() == 0; }
void lmp_dist_solo(int on) { solo = on; }

static void reduce(void *buf, size_t n, size_t elem, MPI_Datatype type)
{
    if (!active() || n == 0) return;
    double t0 = lmp_now();
    /* counts are ints in MPI: reduce a huge buffer in pieces */
    for (size_t off = 0; off < n;) {
        size_t k = n - off < (size_t)1 << 30 ? n - off : (size_t)1 << 30;
        if (MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * elem, (int)k, type, MPI_SUM, MPI_COMM_WORLD) !=
            MPI_SUCCESS)
            lmp_dist_abort("MPI_Allreduce failed", 1);
        off += k;
    }
    reduce_seconds += lmp_now() - t0;
}

void lmp_dist_sum_floats(float *buf, size_t n) { reduce(buf, n, sizeof *buf, MPI_FLOAT); }
void lmp_dist_sum_doubles(double *buf, size_t n) { reduce(buf, n, sizeof *buf, MPI_DOUBLE); }
void lmp_dist_sum_ints(int *buf, size_t n) { reduce(buf, n, sizeof *buf, MPI_INT); }

void lmp_dist_bcast_long(long *v)
{
    if (active()) MPI_Bcast(v, 1, MPI_LONG, 0, MPI_COMM_WORLD);
}

void lmp_dist_world_sum_ints(int *buf, size_t n)
{
    if (started && world_size > 1 && n > 0) MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
}

void lmp_dist_world_bcast_long(long *v)
{
    if (started && world_size > 1) MPI_Bcast(v, 1, MPI_LONG, 0, MPI_COMM_WORLD);
}

double lmp_dist_reduce_seconds(void) { return reduce_seconds; }

void lmp_dist_abort(const char *message, int code)
{
    fflush(stdout);
    if (started && world_size > 1) {
        fprintf(stderr, "lmpipe: rank %d of %d: %s\n", world_rank, world_size, message);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, code);
    }
    fprintf(stderr, "lmpipe: %s\n", message);
    exit(code);
}

#else /* !HAVE_MPI */

/* Started by mpirun with several processes but built without MPI: each
 * would run the whole pipeline alone, racing the others on the store and
 * the cache.  Say so instead. */
void lmp_dist_init(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", NULL};
    for (int i = 0; vars[i]; i++) {
        const char *v = getenv(vars[i]);
        if (v && atoi(v) > 1) {
            fprintf(stderr, "lmpipe: started by mpirun as %s processes, but built without MPI "
                            "(./configure --with-mpi)\n", v);
            exit(2);
        }
    }
}
void lmp_dist_finalize(void) {}
int lmp_dist_rank(void) { return 0; }
int lmp_dist_size(void) { return 1; }
int lmp_dist_world(void) { return 1; }
int lmp_dist_world_rank(void) { return 0; }
int lmp_dist_writer(void) { return 1; }
void lmp_dist_solo(int on) { (void)on; }
void lmp_dist_sum_floats(float *buf, size_t n) { (void)buf, (void)n; }
void lmp_dist_sum_doubles(double *buf, size_t n) { (void)buf, (void)n; }
void lmp_dist_sum_ints(int *buf, size_t n) { (void)buf, (void)n; }
void lmp_dist_bcast_long(long *v) { (void)v; }
void lmp_dist_world_sum_ints(int *buf, size_t n) { (void)buf, (void)n; }
void lmp_dist_world_bcast_long(long *v) { (void)v; }
double lmp_dist_reduce_seconds(void) { return 0; }

void lmp_dist_abort(const char *message, int code)
{
    fflush(stdout);
    fprintf(stderr, "lmpipe: %s\n", message);
    exit(code);
}

#endif

void lmp_dist_shard(long n, long *lo, long *hi)
{
    long r = lmp_dist_rank(), s = lmp_dist_size();
    *lo = n * r / s;
    *hi = n * (r + 1) / s;
}
