/*
 * svg.c — line and grouped bar charts as SVG text (see svg.h).  Coordinates
 * are computed here, in a fixed layout: plot area on the left, legend on the
 * right, title on top, tick labels chosen at "nice" steps (1, 2 or 5 x 10^k).
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svg.h"

static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
#define NCOLORS (int)(sizeof palette / sizeof palette[0])

void lmp_xml_escape(lmp_sbuf *b, const char *s)
{
    if (!s) return;
    size_t n = strlen(s);
    int utf8 = lmp_utf8_valid(s, n, NULL);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '&': lmp_sbuf_puts(b, "&amp;"); break;
        case '<': lmp_sbuf_puts(b, "&lt;"); break;
        case '>': lmp_sbuf_puts(b, "&gt;"); break;
        case '"': lmp_sbuf_puts(b, "&quot;"); break;
        case '\'': lmp_sbuf_puts(b, "&#39;"); break;
        default:
            /* XML 1.0 forbids most control characters, even escaped */
            if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f || (c >= 0x80 && !utf8))
                lmp_sbuf_putc(b, '?');
            else
                lmp_sbuf_putc(b, (char)c);
        }
    }
}

/* Tick positions: a nice step covering [*lo, *hi] in about `want` intervals;
 * widens the range to whole steps. */
static double nice_step(double *lo, double *hi, int want)
{
    if (!(*hi > *lo)) { /* one value (or none): a unit-wide range around it */
        double pad = *lo != 0 ? fabs(*lo) * 0.1 : 0.5;
        *lo -= pad;
        *hi += pad;
    }
    double rough = (*hi - *lo) / want;
    double mag = pow(10, floor(log10(rough)));
    double norm = rough / mag;
    double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
    *lo = floor(*lo / step + 1e-9) * step;
    *hi = ceil(*hi / step - 1e-9) * step;
    return step;
}

/* A tick label with as many decimals as the step needs; never "-0". */
static void put_num(lmp_sbuf *b, double v, double step)
{
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (dec > 8) dec = 8;
    if (fabs(v) < step * 1e-6) v = 0;
    if (fabs(v) >= 1e6 || (v != 0 && fabs(v) < 1e-4)) lmp_sbuf_printf(b, "%.3g", v);
    else lmp_sbuf_printf(b, "%.*f", dec, v);
}

static void put_text(lmp_sbuf *b, double x, double y, const char *anchor, const char *extra, const char *s)
{
    lmp_sbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\"%s>", x, y, anchor, extra);
    lmp_xml_escape(b, s);
    lmp_sbuf_puts(b, "</text>\n");
}

static void open_svg(lmp_sbuf *b, int w, int h, const char *title)
{
    lmp_sbuf_printf(b,
                    "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                    "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n",
                    w, h, w, h);
    lmp_sbuf_puts(b, "<title>");
    lmp_xml_escape(b, title);
    lmp_sbuf_puts(b, "</title>\n");
    lmp_sbuf_printf(b, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n", w, h);
    put_text(b, w / 2.0, 20, "middle", " font-size=\"14\" font-weight=\"bold\"", title);
}

/* Layout shared by both charts. */
enum { TOP = 34, LEFT = 64, PLOT_W = 480, PLOT_H = 260, LEGEND_W = 180 };

static void legend(lmp_sbuf *b, double x0, const char *const *names, int n, int lines)
{
    for (int i = 0; i < n; i++) {
        double y = TOP + 8 + i * 18;
        const char *col = palette[i % NCOLORS];
        if (lines)
            lmp_sbuf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>\n",
                            x0, y - 4, x0 + 18, y - 4, col);
        else
            lmp_sbuf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"10\" fill=\"%s\"/>\n", x0 + 3,
                            y - 9, col);
        put_text(b, x0 + 24, y, "start", "", names[i]);
    }
}

/* Horizontal grid lines and y tick labels over [lo, hi]. */
static void y_axis(lmp_sbuf *b, double lo, double hi, double step, const char *label)
{
    for (int t = 0, nt = (int)lround((hi - lo) / step); t <= nt; t++) {
        double v = lo + t * step;
        double y = TOP + PLOT_H - (v - lo) / (hi - lo) * PLOT_H;
        lmp_sbuf_printf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>\n", LEFT, y,
                        LEFT + PLOT_W, y);
        lmp_sbuf_printf(b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">", LEFT - 6, y + 4);
        put_num(b, v, step);
        lmp_sbuf_puts(b, "</text>\n");
    }
    if (label && *label) {
        char extra[96];
        snprintf(extra, sizeof extra, " transform=\"rotate(-90 %d %d)\"", 16, TOP + PLOT_H / 2);
        put_text(b, 16, TOP + PLOT_H / 2, "middle", extra, label);
    }
    lmp_sbuf_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444\"/>\n", LEFT,
                    TOP, PLOT_W, PLOT_H);
}

char *lmp_svg_line_chart(const char *title, const char *xlabel, const char *ylabel, const lmp_svg_series *series,
                         int nseries)
{
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int s = 0; s < nseries; s++)
        for (int i = 0; i < series[s].n; i++) {
            double x = series[s].x[i], y = series[s].y[i];
            if (!isfinite(x) || !isfinite(y)) continue;
            xlo = fmin(xlo, x), xhi = fmax(xhi, x);
            ylo = fmin(ylo, y), yhi = fmax(yhi, y);
        }
    int empty = !(xlo <= xhi);
    if (empty) xlo = xhi = ylo = yhi = 0;
    /* steps and epochs are whole numbers: no ticks between them */
    int whole = 1;
    for (int s = 0; s < nseries && whole; s++)
        for (int i = 0; i < series[s].n && whole; i++)
            if (isfinite(series[s].x[i]) && series[s].x[i] != floor(series[s].x[i])) whole = 0;
    double xstep = nice_step(&xlo, &xhi, 8), ystep = nice_step(&ylo, &yhi, 6);
    if (whole && xstep < 1) {
        xstep = 1;
        xlo = floor(xlo);
        xhi = ceil(xhi);
        if (xhi == xlo) xlo -= 1, xhi += 1;
    }
    int w = LEFT + PLOT_W + 16 + LEGEND_W, h = TOP + PLOT_H + 48;
    lmp_sbuf b = {0};
    open_svg(&b, w, h, title);
    y_axis(&b, ylo, yhi, ystep, ylabel);
    for (int t = 0, nt = (int)lround((xhi - xlo) / xstep); t <= nt; t++) {
        double v = xlo + t * xstep;
        double x = LEFT + (v - xlo) / (xhi - xlo) * PLOT_W;
        lmp_sbuf_printf(&b, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#444\"/>\n", x,
                        TOP + PLOT_H, x, TOP + PLOT_H + 5);
        lmp_sbuf_printf(&b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", x, TOP + PLOT_H + 18);
        put_num(&b, v, xstep);
        lmp_sbuf_puts(&b, "</text>\n");
    }
    if (xlabel && *xlabel) put_text(&b, LEFT + PLOT_W / 2.0, TOP + PLOT_H + 38, "middle", "", xlabel);
    if (empty) put_text(&b, LEFT + PLOT_W / 2.0, TOP + PLOT_H / 2.0, "middle", " fill=\"#888\"", "no data");
    const char **names = mallocCheck((size_t)(nseries ? nseries : 1) * sizeof *names);
    for (int s = 0; s < nseries; s++) {
        const char *col = palette[s % NCOLORS];
        names[s] = series[s].name;
        /* one polyline per run of finite points */
        int open = 0;
        lmp_sbuf dots = {0};
        lmp_sbuf_puts(&dots, "");
        for (int i = 0; i < series[s].n; i++) {
            double xv = series[s].x[i], yv = series[s].y[i];
            if (!isfinite(xv) || !isfinite(yv)) {
                if (open) lmp_sbuf_puts(&b, "\"/>\n");
                open = 0;
                continue;
            }
            double x = LEFT + (xv - xlo) / (xhi - xlo) * PLOT_W, y = TOP + PLOT_H - (yv - ylo) / (yhi - ylo) * PLOT_H;
            if (!open)
                lmp_sbuf_printf(&b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col);
            lmp_sbuf_printf(&b, "%s%.1f,%.1f", open ? " " : "", x, y);
            open = 1;
            lmp_sbuf_printf(&dots, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n", x, y, col);
        }
        if (open) lmp_sbuf_puts(&b, "\"/>\n");
        /* markers only where they stay readable */
        if (series[s].n <= 60) lmp_sbuf_puts(&b, dots.s);
        lmp_sbuf_free(&dots);
    }
    legend(&b, LEFT + PLOT_W + 16, names, nseries, 1);
    free(names);
    lmp_sbuf_puts(&b, "</svg>\n");
    return b.s;
}

char *lmp_svg_bar_chart(const char *title, const char *const *groups, int ngroups, const char *const *bars,
                        int nbars, const double *values)
{
    double lo = 0, hi = 0; /* bars start at zero, so zero is always on the axis */
    for (int i = 0; i < ngroups * nbars; i++)
        if (isfinite(values[i])) lo = fmin(lo, values[i]), hi = fmax(hi, values[i]);
    double step = nice_step(&lo, &hi, 6);
    double bar_w = 16, group_w = nbars * bar_w + 20;
    double plot_w = fmax(PLOT_W, ngroups * group_w);
    /* long group labels are turned so they do not run into each other */
    size_t longest = 0;
    for (int g = 0; g < ngroups; g++) longest = strlen(groups[g]) > longest ? strlen(groups[g]) : longest;
    int turn = (double)longest * 6.5 > plot_w / (ngroups ? ngroups : 1) - 4;
    int label_h = turn ? (int)fmin(longest * 6.0, 160) + 10 : 24;
    int w = (int)(LEFT + plot_w + 16 + LEGEND_W), h = TOP + PLOT_H + label_h + 12;
    lmp_sbuf b = {0};
    open_svg(&b, w, h, title);
    /* the y axis helper draws a PLOT_W-wide frame; a wider chart draws its own */
    for (int t = 0, nt = (int)lround((hi - lo) / step); t <= nt; t++) {
        double v = lo + t * step;
        double y = TOP + PLOT_H - (v - lo) / (hi - lo) * PLOT_H;
        lmp_sbuf_printf(&b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>\n", LEFT, y,
                        LEFT + plot_w, y);
        lmp_sbuf_printf(&b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">", LEFT - 6, y + 4);
        put_num(&b, v, step);
        lmp_sbuf_puts(&b, "</text>\n");
    }
    double y0 = TOP + PLOT_H - (0 - lo) / (hi - lo) * PLOT_H;
    for (int g = 0; g < ngroups; g++) {
        double gx = LEFT + g * (plot_w / ngroups) + (plot_w / ngroups - nbars * bar_w) / 2;
        for (int k = 0; k < nbars; k++) {
            double v = values[g * nbars + k];
            if (!isfinite(v)) continue;
            double y = TOP + PLOT_H - (v - lo) / (hi - lo) * PLOT_H;
            double top = fmin(y, y0), height = fabs(y - y0);
            lmp_sbuf_printf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>",
                            gx + k * bar_w, top, bar_w - 2, height, palette[k % NCOLORS]);
            lmp_xml_escape(&b, bars[k]);
            lmp_sbuf_puts(&b, " ");
            lmp_xml_escape(&b, groups[g]);
            lmp_sbuf_printf(&b, " = %.6g</title></rect>\n", v);
        }
        double cx = LEFT + (g + 0.5) * (plot_w / ngroups), ly = TOP + PLOT_H + 16;
        if (turn) {
            char extra[96];
            snprintf(extra, sizeof extra, " transform=\"rotate(-35 %.1f %.1f)\"", cx, ly);
            put_text(&b, cx, ly, "end", extra, groups[g]);
        } else {
            put_text(&b, cx, ly, "middle", "", groups[g]);
        }
    }
    if (ngroups == 0) put_text(&b, LEFT + plot_w / 2, TOP + PLOT_H / 2.0, "middle", " fill=\"#888\"", "no data");
    lmp_sbuf_printf(&b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>\n", LEFT, y0,
                    LEFT + plot_w, y0);
    lmp_sbuf_printf(&b, "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"none\" stroke=\"#444\"/>\n",
                    LEFT, TOP, plot_w, PLOT_H);
    legend(&b, LEFT + plot_w + 16, bars, nbars, 0);
    lmp_sbuf_puts(&b, "</svg>\n");
    return b.s;
}
