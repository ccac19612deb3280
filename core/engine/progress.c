/*
 * progress.c — see progress.h.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "progress.h"
#include "util.h"

#define PLAIN_INTERVAL_S 10.0
#define TTY_INTERVAL_S 0.1

void lmp_format_duration(double s, char *buf, int size)
{
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, (size_t)size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else if (t >= 60) snprintf(buf, (size_t)size, "%ld:%02ld", t / 60, t % 60);
    else snprintf(buf, (size_t)size, "%lds", t);
}

void lmp_progress_clear(lmp_progress_state *p)
{
    if (p->bar_shown) {
        fputs("\r\033[K", stderr);
        p->bar_shown = 0;
    }
}

void lmp_progress_update(lmp_progress_state *p, const char *stage, const char *what, int64_t done,
                         int64_t total)
{
    double now = lmp_now();
    if (strncmp(p->what, what, sizeof p->what - 1) != 0 || p->start == 0) {
        snprintf(p->what, sizeof p->what, "%s", what);
        p->start = now;
        p->last = 0;
        p->start_done = done;
    }
    int tty = isatty(STDERR_FILENO);
    int final = total > 0 && done >= total;
    if (!final && now - p->last < (tty ? TTY_INTERVAL_S : PLAIN_INTERVAL_S) && p->last != 0) return;
    p->last = now;
    double el = now - p->start;
    double rate = el > 0 ? (double)(done - p->start_done) / el : 0;
    char eta[32] = "?", elapsed[32];
    if (rate > 0 && total > 0) lmp_format_duration((double)(total - done) / rate, eta, sizeof eta);
    lmp_format_duration(el, elapsed, sizeof elapsed);
    if (tty) {
        char bar[31];
        int fill = total > 0 ? (int)(30 * (double)done / (double)total) : 0;
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        if (total > 0)
            fprintf(stderr, "\r\033[K[%s] %s %3d%% |%s| %lld/%lld %.1f/s ETA %s", stage, what,
                    (int)(100 * done / total), bar, (long long)done, (long long)total, rate, eta);
        else
            fprintf(stderr, "\r\033[K[%s] %s %lld %.1f/s", stage, what, (long long)done, rate);
        p->bar_shown = 1;
        if (final) lmp_progress_clear(p), fprintf(stderr, "[%s] %s %lld/%lld done in %s\n", stage, what,
                                                  (long long)done, (long long)total, elapsed);
    } else {
        if (total > 0)
            fprintf(stderr, "[%s] %s %lld/%lld (%d%%) %.1f/s elapsed %s ETA %s\n", stage, what,
                    (long long)done, (long long)total, (int)(100 * done / total), rate, elapsed,
                    final ? "0s" : eta);
        else
            fprintf(stderr, "[%s] %s %lld %.1f/s elapsed %s\n", stage, what, (long long)done, rate, elapsed);
    }
}
