/*
 * errors.h — how every layer of lmpipe reports back to its caller: a
 * function returns 0 on success and -1 on failure, with a one-line message
 * in a thread-local buffer (lmp_error / lmp_errmsg); and a long loop polls
 * one process-wide flag to learn it should stop (lmp_interrupted), set by
 * the run executor's SIGINT/SIGTERM handler or by a data-parallel loop that
 * heard of the interruption from another rank.  Part of the plugin API
 * (lmpipe.h includes it) and of base, so numerics below the engine use the
 * same conventions without depending on it.
 */
#ifndef LMP_ERRORS_H
#define LMP_ERRORS_H

#ifdef __cplusplus
extern "C" {
#endif

/* Set the calling thread's error message (printf-style); always returns -1. */
int lmp_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The last message set by lmp_error() on this thread ("" if none). */
const char *lmp_errmsg(void);

/* Nonzero once SIGINT/SIGTERM arrived: long loops should stop and return -1. */
int lmp_interrupted(void);
/* For data-parallel loops that learn of an interruption from another rank
 * (dist.h): from now on lmp_interrupted() is true on this rank too. */
void lmp_set_interrupted(void);
/* For the signal handler (async-signal-safe): record signal `sig`; returns
 * the signal recorded before (0 if none).  lmp_interrupt_signal() reads it;
 * lmp_interrupt_clear() forgets it (a new run starts). */
int lmp_interrupt_note(int sig);
int lmp_interrupt_signal(void);
void lmp_interrupt_clear(void);

#ifdef __cplusplus
}
#endif

#endif
