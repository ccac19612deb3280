/*
 * check_svg.c — the SVG charts: escaping of every text, well-formed output
 * (a small tag-balance checker), ticks at nice values, gaps for missing
 * points, and charts of degenerate data (no points, one point, a constant)
 * without NaN or Inf in any coordinate.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "svg.h"
#include "util.h"
#include "testutil.h"

/* Tags balance, entities are known, and nothing is NaN/Inf.  Returns NULL or what is wrong. */
static const char *check_xml(const char *s)
{
    static char why[256];
    const char *stack[256];
    size_t stack_len[256];
    int depth = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '&') {
            static const char *const ents[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&#39;"};
            int ok = 0;
            for (int i = 0; i < 5; i++) ok |= strncmp(p, ents[i], strlen(ents[i])) == 0;
            if (!ok) return snprintf(why, sizeof why, "bad entity at %.20s", p), why;
        }
        if (*p == '>') return snprintf(why, sizeof why, "stray '>' at offset %ld", (long)(p - s)), why;
        if (*p != '<') continue;
        const char *end = strchr(p, '>');
        if (!end) return "unclosed tag";
        for (const char *q = p + 1; q < end; q++)
            if (*q == '<') return snprintf(why, sizeof why, "'<' inside a tag at %.30s", p), why;
        if (p[1] == '/') {
            size_t l = (size_t)(end - p - 2);
            if (depth == 0 || stack_len[depth - 1] != l || strncmp(stack[depth - 1], p + 2, l) != 0)
                return snprintf(why, sizeof why, "mismatched close %.*s", (int)l + 3, p), why;
            depth--;
        } else if (end[-1] != '/') {
            size_t l = strcspn(p + 1, " >");
            if (depth == 256) return "too deep";
            stack[depth] = p + 1, stack_len[depth++] = l;
        }
        p = end;
    }
    if (depth) return "unclosed element";
    if (strstr(s, "nan") || strstr(s, "inf")) return "NaN or Inf in the output";
    return NULL;
}

static int count(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what)) n++;
    return n;
}

START_TEST(escape)
{
    lmp_sbuf b = {0};
    lmp_xml_escape(&b, "a<&>\"'b É\x01\x7f\tz");
    ck_assert_str_eq(b.s, "a&lt;&amp;&gt;&quot;&#39;b É??\tz");
    b.len = 0;
    lmp_xml_escape(&b, "bad \xff utf8");
    ck_assert_str_eq(b.s, "bad ? utf8");
    lmp_sbuf_free(&b);
}
END_TEST

START_TEST(line_chart)
{
    double x[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    double loss[] = {2.3, 1.9, 1.5, 1.2, 1.0, 0.9, 0.8, 0.75, 0.7, 0.68, 0.66};
    double dev[] = {2.4, 2.0, NAN, 1.4, 1.3, 1.25, 1.2, 1.2, 1.21, 1.22, 1.25};
    lmp_svg_series s[] = {{"train<loss>", x, loss, 11}, {"dev & loss", x, dev, 11}};
    char *svg = lmp_svg_line_chart("run 1 · <fit> & \"loss\"", "step", "loss", s, 2);
    const char *bad = check_xml(svg);
    ck_assert_msg(!bad, "%s\n%s", bad, svg);
    ck_assert(strncmp(svg, "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\"", 53) == 0);
    ck_assert(strstr(svg, "<title>run 1 · &lt;fit&gt; &amp; &quot;loss&quot;</title>"));
    ck_assert(strstr(svg, ">train&lt;loss&gt;</text>"));
    ck_assert(strstr(svg, ">dev &amp; loss</text>"));
    ck_assert_int_eq(count(svg, "<polyline"), 3); /* the NaN splits the dev line */
    ck_assert_int_eq(count(svg, "<circle"), 21);
    /* x ticks 0..10 by 1, y ticks 0.6..2.4 by 0.2 (nice steps covering the data) */
    ck_assert(strstr(svg, "text-anchor=\"middle\">0</text>"));
    ck_assert(strstr(svg, "text-anchor=\"middle\">2</text>"));
    ck_assert(strstr(svg, "text-anchor=\"middle\">10</text>"));
    ck_assert(strstr(svg, "text-anchor=\"end\">0.6</text>"));
    ck_assert(strstr(svg, "text-anchor=\"end\">1.0</text>"));
    ck_assert(strstr(svg, "text-anchor=\"end\">2.4</text>"));
    ck_assert_int_eq(count(svg, "text-anchor=\"end\""), 10);
    ck_assert(strstr(svg, ">step</text>"));
    free(svg);

    /* degenerate data */
    double one_x[] = {3}, one_y[] = {0.5}, flat[] = {1, 1, 1};
    lmp_svg_series one = {"one", one_x, one_y, 1}, constant = {"flat", x, flat, 3}, none = {"none", x, loss, 0};
    const lmp_svg_series *cases[] = {&one, &constant, &none};
    for (int i = 0; i < 3; i++) {
        svg = lmp_svg_line_chart("t", "", "", cases[i], 1);
        bad = check_xml(svg);
        ck_assert_msg(!bad, "case %d: %s\n%s", i, bad, svg);
        ck_assert_int_eq(count(svg, "no data"), i == 2);
        free(svg);
    }
    svg = lmp_svg_line_chart("nothing", "x", "y", NULL, 0);
    ck_assert_msg(!check_xml(svg), "%s", check_xml(svg));
    ck_assert(strstr(svg, "no data"));
    free(svg);
    /* tiny and huge values keep readable ticks */
    double tiny[] = {1e-5, 3e-5}, huge[] = {2e7, 9e7};
    lmp_svg_series t = {"lr", x, tiny, 2}, h = {"tokens", x, huge, 2};
    svg = lmp_svg_line_chart("lr", "step", "lr", &t, 1);
    ck_assert_msg(!check_xml(svg), "%s", check_xml(svg));
    ck_assert(strstr(svg, ">1e-05</text>"));
    free(svg);
    svg = lmp_svg_line_chart("tokens", "step", "n", &h, 1);
    ck_assert_msg(!check_xml(svg), "%s", check_xml(svg));
    ck_assert(strstr(svg, ">9e+07</text>"));
    free(svg);
}
END_TEST

START_TEST(bar_chart)
{
    const char *groups[] = {"eval.dev_acc", "eval.dev_mcc", "x<&>"};
    const char *bars[] = {"run 1", "run <2>"};
    double v[] = {0.8, 0.82, 0.45, -0.1, NAN, 0.3};
    char *svg = lmp_svg_bar_chart("final <metrics>", groups, 3, bars, 2, v);
    const char *bad = check_xml(svg);
    ck_assert_msg(!bad, "%s\n%s", bad, svg);
    ck_assert(strncmp(svg, "<svg class=\"chart\"", 18) == 0);
    ck_assert_int_eq(count(svg, "</title></rect>"), 5); /* the NaN has no bar */
    ck_assert(strstr(svg, "<title>run &lt;2&gt; eval.dev_mcc = -0.1</title>"));
    ck_assert(strstr(svg, ">x&lt;&amp;&gt;</text>"));
    ck_assert(strstr(svg, ">run &lt;2&gt;</text>"));
    ck_assert(strstr(svg, "text-anchor=\"end\">-0.2</text>")); /* the axis reaches below zero */
    free(svg);
    /* many long group names are turned */
    const char *longg[12];
    double lv[12];
    for (int i = 0; i < 12; i++) longg[i] = "a-rather-long-stage.validation_accuracy", lv[i] = i / 12.0;
    svg = lmp_svg_bar_chart("many", longg, 12, bars, 1, lv);
    ck_assert_msg(!check_xml(svg), "%s", check_xml(svg));
    ck_assert_int_eq(count(svg, "rotate(-35"), 12);
    free(svg);
    svg = lmp_svg_bar_chart("empty", NULL, 0, bars, 2, NULL);
    ck_assert_msg(!check_xml(svg), "%s", check_xml(svg));
    ck_assert(strstr(svg, "no data"));
    free(svg);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("svg");
    TCase *tc = tcase_create("svg");
    tcase_add_test(tc, escape);
    tcase_add_test(tc, line_chart);
    tcase_add_test(tc, bar_chart);
    suite_add_tcase(s, tc);
    int failed = test_run_suite(s, 0);
    return failed ? 1 : 0;
}
