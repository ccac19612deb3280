/*
 * fuzz_param.c — typed parameter parsing (core/engine/param.h) on arbitrary text:
 * the first byte picks a declaration (every type, bounded and unbounded),
 * the rest is the value.  Properties: an accepted value's canonical text
 * parses again to the same value and the same text (what the params table
 * stores can be fed back with -p); a rejected one leaves a one-line
 * message; "did you mean" only ever suggests a declared key.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "param.h"
#include "util.h"

static const lmp_param specs[] = {
    {"epochs", LMP_INT, "3", 1, 100, NULL, "bounded int"},
    {"seed", LMP_INT, "0", LMP_UNBOUNDED, NULL, "unbounded int"},
    {"lr", LMP_FLOAT, "1e-3", 0, 10, NULL, "bounded float"},
    {"scale", LMP_FLOAT, "1", LMP_UNBOUNDED, NULL, "unbounded float"},
    {"shuffle", LMP_BOOL, "true", LMP_UNBOUNDED, NULL, "bool"},
    {"mode", LMP_ENUM, "plain", LMP_UNBOUNDED, "plain|double|negate", "enum"},
    {"label", LMP_STRING, "x", LMP_UNBOUNDED, NULL, "string"},
    {"path", LMP_PATH, "-", LMP_UNBOUNDED, NULL, "path"},
    {"empty_enum", LMP_ENUM, "", LMP_UNBOUNDED, "", "enum without choices"},
    LMP_PARAM_END,
};
#define NSPECS ((int)(sizeof specs / sizeof specs[0]) - 1)

int fuzz_param(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    const lmp_param *spec = &specs[data[0] % NSPECS];
    char *text = strndup((const char *)data + 1, size - 1);
    if (!text) abort();
    lmp_param_value v, again;
    fuzz_clear_error();
    if (lmp_param_parse(spec, text, &v) != 0) {
        fuzz_check_errmsg("param");
    } else {
        if (!v.text) fuzz_fail("param", "'%s' accepted without a canonical text", text);
        fuzz_clear_error();
        if (lmp_param_parse(spec, v.text, &again) != 0)
            fuzz_fail("param", "%s: '%s' accepted, its canonical text '%s' rejected: %s", spec->key, text, v.text,
                      lmp_errmsg());
        if (strcmp(again.text, v.text) != 0 || again.i != v.i || memcmp(&again.f, &v.f, sizeof v.f) != 0)
            fuzz_fail("param", "%s: '%s' -> '%s' -> '%s' changed", spec->key, text, v.text, again.text);
        free(again.text);
        free(v.text);
    }
    const char *sug = lmp_param_suggest(specs, text);
    if (sug && !lmp_param_find(specs, sug)) fuzz_fail("param", "suggested undeclared key '%s'", sug);
    char range[256];
    lmp_param_range_str(spec, range, sizeof range);
    free(text);
    return 0;
}
LMP_FUZZ_ENTRY(fuzz_param)
