/*
 * dist.h — data parallelism over MPI: the ranks of `mpirun -np N lmpipe run`
 * and the few collective operations training needs.
 *
 * Built without MPI (configure without --with-mpi), or started without
 * mpirun, there is one rank and every call here is a cheap no-op, so the
 * numerics code calls these unconditionally.
 *
 * The model: every rank runs the same pipeline with the same seed; a
 * training step shards each global batch over the ranks (lmp_dist_shard),
 * each rank adds its share of the mean-loss gradient, and one
 * lmp_dist_sum_floats over the gradient bucket (optim.h: grad_mem, with
 * LMP_GRAD_EXTRA scalar slots after the gradients) makes every rank's
 * gradient the global one; every rank then takes the same optimizer step.
 * Only rank 0 writes to the store, the artifacts and the caches
 * (lmp_dist_writer); a failure on any rank records the failure and ends all
 * ranks with MPI_Abort (run.c).
 */
#ifndef LMP_DIST_H
#define LMP_DIST_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Initialise MPI when this process was started by mpirun/mpiexec (and MPI
 * is built in); otherwise do nothing.  Call once, first thing in main. */
void lmp_dist_init(int *argc, char ***argv);
/* Finalise MPI if lmp_dist_init started it. */
void lmp_dist_finalize(void);

int lmp_dist_rank(void);   /* 0 .. size-1; 0 without MPI */
int lmp_dist_size(void);   /* ranks working together; 1 without MPI */
int lmp_dist_world(void);  /* ranks mpirun started (differs from size in a sweep) */
int lmp_dist_world_rank(void); /* this process among them (differs from rank in a sweep) */
/* 1 on the rank that writes the store, artifacts and caches (rank 0). */
int lmp_dist_writer(void);

/* A sweep runs one independent run per rank: solo(1) makes every rank a
 * world of its own (size 1, writer), solo(0) restores the whole world. */
void lmp_dist_solo(int on);

/* The rows [*lo, *hi) of n rows that this rank takes: contiguous, sizes
 * differing by at most one, in rank order. */
void lmp_dist_shard(long n, long *lo, long *hi);

/* In-place sums over all ranks (MPI_Allreduce).  Time spent is added to
 * lmp_dist_reduce_seconds. */
void lmp_dist_sum_floats(float *buf, size_t n);
void lmp_dist_sum_doubles(double *buf, size_t n);
void lmp_dist_sum_ints(int *buf, size_t n);
/* Rank 0's value to every rank. */
void lmp_dist_bcast_long(long *v);
/* Sum over the whole world of mpirun's processes, whatever lmp_dist_solo
 * says (a sweep's totals). */
void lmp_dist_world_sum_ints(int *buf, size_t n);
void lmp_dist_world_bcast_long(long *v);
/* Seconds spent in the sums since the start (for benchmarks). */
double lmp_dist_reduce_seconds(void);

/* End every rank now: print "lmpipe: rank R: MESSAGE" and MPI_Abort (or
 * exit(code) without MPI). */
void lmp_dist_abort(const char *message, int code) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif

#endif
