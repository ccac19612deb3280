/*
 * param.c — parsing and validation of typed stage parameters (see param.h).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "param.h"
#include "paths.h"
#include "util.h"

const char *lmp_ptype_name(lmp_ptype t)
{
    switch (t) {
    case LMP_INT: return "int";
    case LMP_FLOAT: return "float";
    case LMP_BOOL: return "bool";
    case LMP_STRING: return "string";
    case LMP_ENUM: return "enum";
    case LMP_PATH: return "path";
    case LMP_FILES: return "files";
    }
    return "?";
}

static int bounded(const lmp_param *p) { return p->min <= p->max; }

void lmp_param_range_str(const lmp_param *p, char *buf, size_t size)
{
    buf[0] = 0;
    if ((p->type == LMP_INT || p->type == LMP_FLOAT) && bounded(p))
        snprintf(buf, size, "[%.10g, %.10g]", p->min, p->max);
    else if (p->type == LMP_ENUM && p->choices)
        snprintf(buf, size, "%s", p->choices);
}

static int enum_has(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *c = choices; c && *c;) {
        const char *bar = strchr(c, '|');
        size_t len = bar ? (size_t)(bar - c) : strlen(c);
        if (len == n && strncmp(c, v, n) == 0) return 1;
        c = bar ? bar + 1 : NULL;
    }
    return 0;
}

int lmp_param_parse(const lmp_param *p, const char *text, lmp_param_value *out)
{
    memset(out, 0, sizeof *out);
    out->spec = p;
    char range[256];
    lmp_param_range_str(p, range, sizeof range);
    switch (p->type) {
    case LMP_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (!*text || *end || errno)
            return lmp_error("'%s' is not an integer", text);
        if (bounded(p) && (v < p->min || v > p->max))
            return lmp_error("%lld is out of range %s", v, range);
        out->i = v;
        out->f = (double)v;
        out->text = lmp_strfmt("%lld", v);
        return 0;
    }
    case LMP_FLOAT: {
        double v;
        if (lmp_parse_double(text, &v) != 0) return -1;
        if (bounded(p) && (v < p->min || v > p->max))
            return lmp_error("%s is out of range %s", text, range);
        out->f = v;
        out->text = strdupCheck(text);
        return 0;
    }
    case LMP_BOOL: {
        static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
        for (int i = 0; i < 4; i++) {
            if (strcasecmp(text, yes[i]) == 0) out->i = 1;
            else if (strcasecmp(text, no[i]) == 0) out->i = 0;
            else continue;
            out->text = strdupCheck(out->i ? "true" : "false");
            return 0;
        }
        return lmp_error("'%s' is not a boolean (true/false, yes/no, on/off, 1/0)", text);
    }
    case LMP_ENUM:
        if (!enum_has(p->choices, text))
            return lmp_error("'%s' is not one of %s", text, p->choices ? p->choices : "(no choices)");
        out->text = strdupCheck(text);
        return 0;
    case LMP_PATH:
        if (!*text) return lmp_error("empty path");
        /* fall through */
    case LMP_STRING:
    case LMP_FILES: /* whether the files exist is checked when the stage runs */
        out->text = strdupCheck(text);
        return 0;
    }
    return lmp_error("unknown parameter type %d", (int)p->type);
}

int lmp_param_deprecated(const lmp_param *p)
{
    return p->doc && strncmp(p->doc, LMP_DEPRECATED, strlen(LMP_DEPRECATED)) == 0;
}

const lmp_param *lmp_param_find(const lmp_param *list, const char *key)
{
    for (const lmp_param *p = list; p && p->key; p++)
        if (strcmp(p->key, key) == 0) return p;
    return NULL;
}

const char *lmp_param_suggest(const lmp_param *list, const char *key)
{
    const char *best = NULL;
    int best_d = 1 << 30, d;
    for (const lmp_param *p = list; p && p->key; p++)
        if (lmp_is_close(key, p->key, &d) && d < best_d) best_d = d, best = p->key;
    return best;
}

void lmp_files_free(char **files)
{
    for (int i = 0; files && files[i]; i++) free(files[i]);
    free(files);
}

/* Append each name of a comma- or colon-separated list (spaces before a
 * name dropped), each prefixed with `dir/` when dir is given. */
static void split_files(const char *list, const char *dir, char ***out, int *k)
{
    char *copy = strdupCheck(list), *save = NULL;
    for (char *f = strtok_r(copy, ",:", &save); f; f = strtok_r(NULL, ",:", &save)) {
        while (*f == ' ') f++;
        if (!*f) continue;
        *out = reallocCheck(*out, (size_t)(*k + 2) * sizeof **out);
        (*out)[(*k)++] = dir ? lmp_strfmt("%s/%s", dir, f) : strdupCheck(f);
        (*out)[*k] = NULL;
    }
    free(copy);
}

int lmp_files_resolve(const lmp_param *p, const char *text, char ***files, int *n)
{
    *files = NULL;
    *n = 0;
    char **out = NULL;
    int k = 0;
    if (!*text) {
        if (!p->choices || !*p->choices) return lmp_error("%s: empty: no file named", p->key);
        split_files(p->choices, lmp_data_dir(), &out, &k);
        /* a default file may ship compressed: NAME.gz stands for NAME */
        for (int i = 0; i < k; i++)
            if (access(out[i], F_OK) != 0) {
                char *gz = lmp_strfmt("%s.gz", out[i]);
                if (access(gz, F_OK) == 0) free(out[i]), out[i] = gz;
                else free(gz);
            }
    } else {
        split_files(text, NULL, &out, &k);
    }
    if (!k) return lmp_error("%s: \"%s\" names no file", p->key, text);
    for (int i = 0; i < k; i++) {
        int rc = access(out[i], R_OK) != 0 ? lmp_error("%s: %s: cannot read: %s", p->key, out[i], strerror(errno))
                                           : lmp_data_verify(out[i]);
        if (rc != 0) {
            lmp_files_free(out);
            return -1;
        }
    }
    *files = out;
    *n = k;
    return 0;
}
