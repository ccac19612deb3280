/*
 * svg.h — standalone SVG charts drawn from data arrays, for `lmpipe plot`
 * and `lmpipe report`: line charts (several named series over steps or
 * epochs) and grouped bar charts (one group per metric, one bar per run).
 * The output is one <svg class="chart" ...> element, valid both as an .svg
 * file and inline in HTML; every piece of text in it is XML-escaped.
 */
#ifndef LMP_SVG_H
#define LMP_SVG_H

#include "util.h"

typedef struct {
    const char *name;
    const double *x, *y; /* [n]; a non-finite y is a gap in the line */
    int n;
} lmp_svg_series;

/* A line chart with axes, ticks, axis labels, a legend and a title.  Returns a
 * malloc'd string. */
char *lmp_svg_line_chart(const char *title, const char *xlabel, const char *ylabel, const lmp_svg_series *series,
                         int nseries);

/* A grouped bar chart: values[g * nbars + b] is bar b of group g (NaN: no
 * bar).  Groups are labelled under the axis, bars in the legend. */
char *lmp_svg_bar_chart(const char *title, const char *const *groups, int ngroups, const char *const *bars,
                        int nbars, const double *values);

/* Append s with & < > " ' escaped; control characters and invalid UTF-8 become
 * '?', so the result is always well-formed XML/HTML text. */
void lmp_xml_escape(lmp_sbuf *b, const char *s);

#endif
