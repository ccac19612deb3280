/*
 * progress.h — progress reports for long stages: a redrawn bar with rate and
 * ETA when stderr is a terminal, a plain line every few seconds otherwise
 * (logs stay readable).
 */
#ifndef LMP_PROGRESS_H
#define LMP_PROGRESS_H

#include <stdint.h>

typedef struct {
    double start, last;  /* when this `what` started; last print */
    int64_t start_done;  /* done-count at start (rates of resumed loops) */
    char what[64];
    int bar_shown;       /* a bar is on screen and must be cleared before other output */
} lmp_progress_state;

void lmp_progress_update(lmp_progress_state *p, const char *stage, const char *what, int64_t done,
                         int64_t total);
void lmp_progress_clear(lmp_progress_state *p);
/* Format seconds as 1:02:03 / 2:03 / 3s. */
void lmp_format_duration(double seconds, char *buf, int size);

#endif
