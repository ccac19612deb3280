/*
 * pipeline.c — the pipeline file parser, overrides and the pre-run check
 * (see pipeline.h for the format).  Every error names file:line and, for
 * parameters, the key, with a "did you mean" where one is close.
 */
#include "config.h"

#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pipeline.h"
#include "run.h"
#include "util.h"

#define MAX_PIPELINE_BYTES (1u << 20)
#define MAX_INCLUDE_DEPTH 16
/* Bounds that keep a hostile or broken file from taking all memory or time:
 * a line's text after ${} expansion (`set A=${A}${A}` doubles per line), the
 * nesting of ${A:-${B:-...}} (recursion), every file read through includes
 * (a file may include the same big file many times), and the numbers of
 * stages and of settings per stage (checks are quadratic in them). */
#define MAX_LINE_BYTES (1u << 20)
#define MAX_VAR_NESTING 32
#define MAX_TOTAL_BYTES (16u << 20)
#define MAX_STAGES 10000
#define MAX_STAGE_SETTINGS 1000 /* key=value and @port=stage on one stage (duplicates are checked pairwise) */

/* ---------------------------------------------------------------- variables */

void lmp_vars_set(lmp_vars *v, const char *name, const char *value)
{
    for (int i = 0; i < v->n; i++)
        if (strcmp(v->names[i], name) == 0) {
            free(v->values[i]);
            v->values[i] = strdupCheck(value);
            return;
        }
    v->names = reallocCheck(v->names, (size_t)(v->n + 1) * sizeof *v->names);
    v->values = reallocCheck(v->values, (size_t)(v->n + 1) * sizeof *v->values);
    v->names[v->n] = strdupCheck(name);
    v->values[v->n++] = strdupCheck(value);
}

const char *lmp_vars_get(const lmp_vars *v, const char *name)
{
    for (int i = 0; v && i < v->n; i++)
        if (strcmp(v->names[i], name) == 0) return v->values[i];
    return NULL;
}

void lmp_vars_free(lmp_vars *v)
{
    for (int i = 0; i < v->n; i++) free(v->names[i]), free(v->values[i]);
    free(v->names);
    free(v->values);
    memset(v, 0, sizeof *v);
}

/* ------------------------------------------------------------------ parsing */

typedef struct {
    lmp_pipeline *p;
    const lmp_vars *defines; /* -D on the command line: win over everything */
    lmp_vars sets;           /* `set` lines read so far */
    char *stack[MAX_INCLUDE_DEPTH + 1]; /* real paths of the files being read */
    int depth;
    size_t total_bytes;      /* read so far, includes too */
    size_t line_bytes;       /* produced by ${} expansions in the current line */
    size_t expanded_bytes;   /* produced by ${} expansions in all */
    int var_nesting;         /* ${...:-${...}} depth of the expansion under way */
} parser;

typedef struct {
    const char *file;
    int line;
} loc;

static int is_name_char(char c, int first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (!first && ((c >= '0' && c <= '9') || c == '-'));
}

static int valid_ident(const char *s, int allow_dash)
{
    if (!is_name_char(*s, 1)) return 0;
    for (s++; *s; s++)
        if (!is_name_char(*s, 0) || (!allow_dash && *s == '-')) return 0;
    return 1;
}

static int expand_var(parser *ps, loc at, const char **pp, lmp_sbuf *out);

/* Append the expansion of text up to an unescaped, unnested '}' */
static int expand_until_brace(parser *ps, loc at, const char **pp, lmp_sbuf *out)
{
    const char *s = *pp;
    while (*s && *s != '}') {
        if (*s == '$' && s[1] == '{') {
            if (expand_var(ps, at, &s, out) != 0) return -1;
        } else {
            lmp_sbuf_putc(out, *s++);
        }
    }
    if (*s != '}') return lmp_error("%s:%d: unterminated ${...}", at.file, at.line);
    *pp = s + 1;
    return 0;
}

/* *pp points at "${"; on return it points past the closing brace. */
static int expand_var_nested(parser *ps, loc at, const char **pp, lmp_sbuf *out);

static int expand_var(parser *ps, loc at, const char **pp, lmp_sbuf *out)
{
    if (ps->var_nesting >= MAX_VAR_NESTING)
        return lmp_error("%s:%d: variable references nested deeper than %d", at.file, at.line, MAX_VAR_NESTING);
    ps->var_nesting++;
    int rc = expand_var_nested(ps, at, pp, out);
    ps->var_nesting--;
    return rc;
}

/* Account for n more bytes of expanded text in the current line. */
static int expansion_budget(parser *ps, loc at, size_t n)
{
    ps->line_bytes += n;
    ps->expanded_bytes += n;
    if (ps->line_bytes > MAX_LINE_BYTES)
        return lmp_error("%s:%d: line too long after expanding variables (over %u bytes)", at.file, at.line,
                         MAX_LINE_BYTES);
    if (ps->expanded_bytes > MAX_TOTAL_BYTES)
        return lmp_error("%s:%d: variables expand to more than %u bytes in all", at.file, at.line,
                         MAX_TOTAL_BYTES);
    return 0;
}

static int expand_var_nested(parser *ps, loc at, const char **pp, lmp_sbuf *out)
{
    const char *s = *pp + 2, *start = s;
    while (is_name_char(*s, s == start)) s++;
    size_t n = (size_t)(s - start);
    if (n == 0) return lmp_error("%s:%d: bad variable reference: expected a name after '${'", at.file, at.line);
    char name[256];
    if (n >= sizeof name) return lmp_error("%s:%d: variable name too long", at.file, at.line);
    memcpy(name, start, n);
    name[n] = 0;
    const char *val = lmp_vars_get(ps->defines, name);
    if (!val) val = lmp_vars_get(&ps->sets, name);
    if (!val) val = getenv(name);
    if (*s == '}') {
        if (!val)
            return lmp_error("%s:%d: undefined variable '%s' (define it with set, -D %s=..., the "
                             "environment, or write ${%s:-default})",
                             at.file, at.line, name, name, name);
        if (expansion_budget(ps, at, strlen(val)) != 0) return -1;
        lmp_sbuf_puts(out, val);
        *pp = s + 1;
        return 0;
    }
    if (s[0] == ':' && s[1] == '-') {
        s += 2;
        if (val && *val) {
            if (expansion_budget(ps, at, strlen(val)) != 0) return -1;
            lmp_sbuf_puts(out, val);
            lmp_sbuf skip = {0}; /* parse (and check) the default without using it */
            int rc = expand_until_brace(ps, at, &s, &skip);
            lmp_sbuf_free(&skip);
            if (rc != 0) return -1;
        } else if (expand_until_brace(ps, at, &s, out) != 0) {
            return -1;
        }
        *pp = s;
        return 0;
    }
    return lmp_error("%s:%d: bad variable reference '${%s%c': expected '}' or ':-'", at.file, at.line,
                     name, *s ? *s : ' ');
}

/* Split a logical line into tokens: whitespace separates, "..." and '...'
 * quote, backslash escapes one character, # starts a comment, ${} expands. */
static int tokenize(parser *ps, loc at, const char *line, char ***toks, int *ntok)
{
    *toks = NULL;
    *ntok = 0;
    const char *s = line;
    for (;;) {
        while (*s == ' ' || *s == '\t' || *s == '\r') s++;
        if (!*s || *s == '#') return 0;
        lmp_sbuf tok = {0};
        lmp_sbuf_puts(&tok, ""); /* an empty quoted token "" is still a token */
        while (*s && *s != ' ' && *s != '\t' && *s != '\r') {
            if (*s == '\'') {
                const char *e = strchr(s + 1, '\'');
                if (!e) goto unterminated;
                lmp_sbuf_putn(&tok, s + 1, (size_t)(e - s - 1));
                s = e + 1;
            } else if (*s == '"') {
                s++;
                while (*s && *s != '"') {
                    if (*s == '\\' && s[1]) {
                        char c = s[1];
                        lmp_sbuf_putc(&tok, c == 'n' ? '\n' : c == 't' ? '\t' : c);
                        s += 2;
                    } else if (*s == '$' && s[1] == '{') {
                        if (expand_var(ps, at, &s, &tok) != 0) goto fail;
                    } else {
                        lmp_sbuf_putc(&tok, *s++);
                    }
                }
                if (*s != '"') goto unterminated;
                s++;
            } else if (*s == '\\' && s[1]) {
                lmp_sbuf_putc(&tok, s[1]);
                s += 2;
            } else if (*s == '$' && s[1] == '{') {
                if (expand_var(ps, at, &s, &tok) != 0) goto fail;
            } else {
                lmp_sbuf_putc(&tok, *s++);
            }
        }
        *toks = reallocCheck(*toks, (size_t)(*ntok + 1) * sizeof **toks);
        (*toks)[(*ntok)++] = tok.s;
        continue;
    unterminated:
        lmp_error("%s:%d: unterminated quote", at.file, at.line);
    fail:
        lmp_sbuf_free(&tok);
        for (int i = 0; i < *ntok; i++) free((*toks)[i]);
        free(*toks);
        *toks = NULL;
        *ntok = 0;
        return -1;
    }
}

static lmp_pstage *find_stage(lmp_pipeline *p, const char *name)
{
    for (int i = 0; i < p->nstages; i++)
        if (strcmp(p->stages[i].name, name) == 0) return &p->stages[i];
    return NULL;
}

static void add_setting(lmp_setting **list, int *n, const char *key, const char *value, loc at)
{
    *list = reallocCheck(*list, (size_t)(*n + 1) * sizeof **list);
    (*list)[(*n)++] = (lmp_setting){strdupCheck(key), strdupCheck(value), at.file, at.line};
}

static int parse_text(parser *ps, const char *file, const char *text, size_t len);

static int do_include(parser *ps, loc at, const char *arg)
{
    char *target;
    if (arg[0] == '/') {
        target = strdupCheck(arg);
    } else {
        char *copy = strdupCheck(at.file);
        target = lmp_strfmt("%s/%s", dirname(copy), arg);
        free(copy);
    }
    char real[PATH_MAX];
    if (!realpath(target, real)) {
        lmp_error("%s:%d: include %s: no such file", at.file, at.line, arg);
        free(target);
        return -1;
    }
    for (int i = 0; i < ps->depth; i++)
        if (strcmp(ps->stack[i], real) == 0) {
            if (i == ps->depth - 1) {
                lmp_error("%s:%d: include %s: the file includes itself (include cycle)", at.file, at.line, arg);
            } else { /* name the whole loop */
                lmp_sbuf chain = {0};
                for (int k = i; k < ps->depth; k++) lmp_sbuf_printf(&chain, "%s -> ", ps->stack[k]);
                lmp_sbuf_puts(&chain, real);
                lmp_error("%s:%d: include %s: include cycle %s", at.file, at.line, arg, chain.s);
                lmp_sbuf_free(&chain);
            }
            free(target);
            return -1;
        }
    if (ps->depth >= MAX_INCLUDE_DEPTH) {
        lmp_error("%s:%d: include %s: includes nested deeper than %d", at.file, at.line, arg, MAX_INCLUDE_DEPTH);
        free(target);
        return -1;
    }
    struct stat sb;
    if (stat(real, &sb) != 0 || !S_ISREG(sb.st_mode)) { /* a FIFO or device would block or never end */
        lmp_error("%s:%d: include %s: not a regular file", at.file, at.line, arg);
        free(target);
        return -1;
    }
    char *data;
    size_t n;
    if (lmp_read_file(target, MAX_PIPELINE_BYTES, &data, &n) != 0) {
        lmp_error("%s:%d: include: %s", at.file, at.line, lmp_errmsg());
        free(target);
        return -1;
    }
    ps->total_bytes += n;
    if (ps->total_bytes > MAX_TOTAL_BYTES) {
        lmp_error("%s:%d: include %s: the pipeline and its includes exceed %u bytes", at.file, at.line, arg,
                  MAX_TOTAL_BYTES);
        free(data);
        free(target);
        return -1;
    }
    ps->p->files = reallocCheck(ps->p->files, (size_t)(ps->p->nfiles + 1) * sizeof *ps->p->files);
    ps->p->files[ps->p->nfiles++] = target;
    /* the stored pipeline text shows what was included, too */
    char *text = lmp_strfmt("%s\n# ---- included from %s:%d: %s ----\n%s", ps->p->text, at.file, at.line,
                            target, data);
    free(ps->p->text);
    ps->p->text = text;
    int rc = parse_text(ps, target, data, n);
    free(data);
    return rc;
}

static int parse_line(parser *ps, loc at, const char *line)
{
    char **tok;
    int n;
    ps->line_bytes = 0;
    if (tokenize(ps, at, line, &tok, &n) != 0) return -1;
    int rc = 0;
    lmp_pipeline *p = ps->p;
    if (n == 0) goto done;
    if (strcmp(tok[0], "set") == 0) {
        if (n < 2) {
            rc = lmp_error("%s:%d: set: expected NAME=VALUE", at.file, at.line);
            goto done;
        }
        for (int i = 1; i < n; i++) {
            char *eq = strchr(tok[i], '=');
            if (eq) *eq = 0;
            if (!eq || !valid_ident(tok[i], 0)) {
                rc = lmp_error("%s:%d: set: expected NAME=VALUE, got '%s'", at.file, at.line, tok[i]);
                goto done;
            }
            lmp_vars_set(&ps->sets, tok[i], eq + 1);
        }
    } else if (strcmp(tok[0], "include") == 0) {
        if (n != 2) {
            rc = lmp_error("%s:%d: include: expected one file name", at.file, at.line);
            goto done;
        }
        rc = do_include(ps, at, tok[1]);
    } else {
        if (!valid_ident(tok[0], 1)) {
            rc = lmp_error("%s:%d: '%s' is not a valid stage name (letters, digits, '_' and '-')",
                           at.file, at.line, tok[0]);
            goto done;
        }
        if (n < 2) {
            rc = lmp_error("%s:%d: stage '%s' has no stage type (expected: NAME STAGE-TYPE key=value ...)",
                           at.file, at.line, tok[0]);
            goto done;
        }
        if (p->nstages >= MAX_STAGES) {
            rc = lmp_error("%s:%d: more than %d stages", at.file, at.line, MAX_STAGES);
            goto done;
        }
        lmp_pstage *prev = find_stage(p, tok[0]);
        if (prev) {
            rc = lmp_error("%s:%d: stage name '%s' is already used at %s:%d", at.file, at.line, tok[0],
                           prev->file, prev->line);
            goto done;
        }
        p->stages = reallocCheck(p->stages, (size_t)(p->nstages + 1) * sizeof *p->stages);
        lmp_pstage *st = &p->stages[p->nstages++];
        memset(st, 0, sizeof *st);
        st->name = strdupCheck(tok[0]);
        st->type = strdupCheck(tok[1]);
        st->file = at.file;
        st->line = at.line;
        if (n - 2 > MAX_STAGE_SETTINGS) {
            rc = lmp_error("%s:%d: stage '%s': more than %d parameters and ports", at.file, at.line, st->name,
                           MAX_STAGE_SETTINGS);
            goto done;
        }
        for (int i = 2; i < n; i++) {
            char *eq = strchr(tok[i], '=');
            int wire = tok[i][0] == '@';
            char *key = tok[i] + wire;
            if (!eq || eq == key) {
                rc = lmp_error("%s:%d: stage '%s': expected key=value or @port=stage, got '%s'", at.file,
                               at.line, st->name, tok[i]);
                goto done;
            }
            *eq = 0;
            lmp_setting *list = wire ? st->wires : st->params;
            int cnt = wire ? st->nwires : st->nparams;
            for (int k = 0; k < cnt; k++)
                if (strcmp(list[k].key, key) == 0) {
                    rc = lmp_error("%s:%d: stage '%s': %s '%s' given twice", at.file, at.line, st->name,
                                   wire ? "port" : "parameter", key);
                    goto done;
                }
            if (wire) add_setting(&st->wires, &st->nwires, key, eq + 1, at);
            else add_setting(&st->params, &st->nparams, key, eq + 1, at);
        }
    }
done:
    for (int i = 0; i < n; i++) free(tok[i]);
    free(tok);
    return rc;
}

static int parse_text(parser *ps, const char *file, const char *text, size_t len)
{
    size_t bad;
    if (memchr(text, 0, len)) {
        size_t off = (size_t)((const char *)memchr(text, 0, len) - text);
        int line = 1;
        for (size_t i = 0; i < off; i++) line += text[i] == '\n';
        return lmp_error("%s:%d: NUL byte: not a text file", file, line);
    }
    if (!lmp_utf8_valid(text, len, &bad)) {
        int line = 1;
        for (size_t i = 0; i < bad; i++) line += text[i] == '\n';
        return lmp_error("%s:%d: invalid UTF-8 (byte %zu)", file, line, bad + 1);
    }
    char real[PATH_MAX];
    ps->stack[ps->depth++] = strdupCheck(realpath(file, real) ? real : file);
    int rc = 0, lineno = 1;
    const char *s = text, *end = text + len;
    lmp_sbuf logical = {0};
    while (s < end && rc == 0) {
        int start_line = lineno;
        logical.len = 0;
        lmp_sbuf_puts(&logical, "");
        for (;;) { /* join lines ending in a backslash */
            const char *nl = memchr(s, '\n', (size_t)(end - s));
            const char *e = nl ? nl : end;
            size_t l = (size_t)(e - s);
            int cont = l > 0 && s[l - 1] == '\\';
            if (cont && l > 1 && s[l - 2] == '\r') l--; /* CRLF files */
            lmp_sbuf_putn(&logical, s, cont ? l - 1 : l);
            s = nl ? nl + 1 : end;
            lineno++;
            if (!cont || s >= end) break;
            lmp_sbuf_putc(&logical, ' ');
        }
        rc = parse_line(ps, (loc){file, start_line}, logical.s);
    }
    lmp_sbuf_free(&logical);
    free(ps->stack[--ps->depth]);
    return rc;
}

static int parse_common(const char *name, const char *text, size_t len, const lmp_vars *defines,
                        lmp_pipeline *p, lmp_pipeline **out)
{
    parser ps = {0};
    ps.p = p;
    ps.defines = defines;
    ps.total_bytes = len;
    p->files = reallocCheck(p->files, (size_t)(p->nfiles + 1) * sizeof *p->files);
    p->files[p->nfiles++] = strdupCheck(name);
    p->text = strdupCheck(text);
    int rc = parse_text(&ps, p->files[0], text, len);
    lmp_vars_free(&ps.sets);
    if (rc == 0 && p->nstages == 0) rc = lmp_error("%s: the pipeline has no stages", name);
    if (rc != 0) {
        lmp_pipeline_free(p);
        return -1;
    }
    *out = p;
    return 0;
}

int lmp_pipeline_parse_string(const char *name, const char *text, const lmp_vars *defines,
                              lmp_pipeline **out)
{
    *out = NULL;
    size_t len = strlen(text);
    if (len > MAX_PIPELINE_BYTES)
        return lmp_error("%s: pipeline too large (%zu bytes, limit %u)", name, len, MAX_PIPELINE_BYTES);
    lmp_pipeline *p = callocCheck(1, sizeof *p);
    p->path = strdupCheck(name);
    return parse_common(name, text, len, defines, p, out);
}

int lmp_pipeline_parse_file(const char *path, const lmp_vars *defines, lmp_pipeline **out)
{
    *out = NULL;
    char *data;
    size_t n;
    if (lmp_read_file(path, MAX_PIPELINE_BYTES, &data, &n) != 0) return -1;
    if (n == 0) {
        free(data);
        return lmp_error("%s: empty pipeline file", path);
    }
    lmp_pipeline *p = callocCheck(1, sizeof *p);
    p->path = strdupCheck(path);
    int rc = parse_common(path, data, n, defines, p, out);
    free(data);
    return rc;
}

void lmp_pipeline_free(lmp_pipeline *p)
{
    if (!p) return;
    for (int i = 0; i < p->nstages; i++) {
        lmp_pstage *st = &p->stages[i];
        free(st->name);
        free(st->type);
        for (int k = 0; k < st->nparams; k++) free(st->params[k].key), free(st->params[k].value);
        for (int k = 0; k < st->nwires; k++) free(st->wires[k].key), free(st->wires[k].value);
        free(st->params);
        free(st->wires);
        for (int k = 0; k < st->nvalues; k++) free(st->values[k].text);
        free(st->values);
        free(st->inputs);
    }
    free(p->stages);
    for (int i = 0; i < p->nfiles; i++) free(p->files[i]);
    free(p->files);
    free(p->path);
    free(p->text);
    free(p);
}

/* ---------------------------------------------------------------- overrides */

static const char OVERRIDE_FILE[] = "command line";

int lmp_pipeline_override(lmp_pipeline *p, const char *spec)
{
    const char *dot = strchr(spec, '.'), *eq = strchr(spec, '=');
    if (!dot || !eq || dot > eq || dot == spec || eq == dot + 1)
        return lmp_error("-p %s: expected STAGE.KEY=VALUE", spec);
    char *stage = strndup(spec, (size_t)(dot - spec)), *key = strndup(dot + 1, (size_t)(eq - dot - 1));
    lmp_pstage *st = find_stage(p, stage);
    int rc = 0;
    if (!st) {
        lmp_sbuf names = {0};
        for (int i = 0; i < p->nstages; i++) lmp_sbuf_printf(&names, "%s%s", i ? ", " : "", p->stages[i].name);
        rc = lmp_error("-p %s: no stage named '%s' in %s (stages: %s)", spec, stage, p->path, names.s);
        lmp_sbuf_free(&names);
    } else {
        int k;
        for (k = 0; k < st->nparams && strcmp(st->params[k].key, key) != 0; k++) {}
        if (k < st->nparams) {
            free(st->params[k].value);
            st->params[k].value = strdupCheck(eq + 1);
            st->params[k].file = OVERRIDE_FILE;
            st->params[k].line = 0;
        } else {
            add_setting(&st->params, &st->nparams, key, eq + 1, (loc){OVERRIDE_FILE, 0});
        }
    }
    free(stage);
    free(key);
    return rc;
}

/* -------------------------------------------------------------------- check */

static char *where(const char *file, int line)
{
    return line > 0 ? lmp_strfmt("%s:%d", file, line) : strdupCheck(file);
}

static int check_params(lmp_pstage *st)
{
    const lmp_stage_def *d = st->entry->def;
    for (int k = 0; k < st->nparams; k++) {
        lmp_setting *s = &st->params[k];
        if (!lmp_param_find(d->params, s->key)) {
            char *w = where(s->file, s->line);
            const char *sug = lmp_param_suggest(d->params, s->key);
            if (sug)
                lmp_error("%s: stage '%s' (%s): unknown parameter '%s'; did you mean '%s'?", w, st->name,
                          st->type, s->key, sug);
            else
                lmp_error("%s: stage '%s' (%s): unknown parameter '%s' (see: lmpipe inspect %s)", w,
                          st->name, st->type, s->key, st->type);
            free(w);
            return -1;
        }
    }
    int n = 0;
    for (const lmp_param *q = d->params; q && q->key; q++) n++;
    st->values = callocCheck((size_t)n, sizeof *st->values);
    st->nvalues = n;
    for (int i = 0; i < n; i++) {
        const lmp_param *q = &d->params[i];
        lmp_setting *s = NULL;
        for (int k = 0; k < st->nparams; k++)
            if (strcmp(st->params[k].key, q->key) == 0) s = &st->params[k];
        if (!s && !q->def) {
            char *w = where(st->file, st->line);
            lmp_error("%s: stage '%s' (%s): parameter '%s' is required (%s)", w, st->name, st->type, q->key,
                      q->doc ? q->doc : lmp_ptype_name(q->type));
            free(w);
            return -1;
        }
        if (lmp_param_parse(q, s ? s->value : q->def, &st->values[i]) != 0) {
            char *w = s ? where(s->file, s->line) : where(st->file, st->line);
            lmp_error("%s: stage '%s' (%s): parameter '%s': %s", w, st->name, st->type, q->key, lmp_errmsg());
            free(w);
            return -1;
        }
        st->values[i].is_set = s != NULL;
    }
    return 0;
}

static int port_index(const lmp_port *ports, const char *name)
{
    for (int i = 0; ports && ports[i].name; i++)
        if (strcmp(ports[i].name, name) == 0) return i;
    return -1;
}

static int check_wiring(lmp_pipeline *p, int si)
{
    lmp_pstage *st = &p->stages[si];
    const lmp_stage_def *d = st->entry->def;
    int nin = 0;
    for (const lmp_port *q = d->consumes; q && q->name; q++) nin++;
    st->inputs = mallocCheck((size_t)(nin ? nin : 1) * sizeof *st->inputs);
    for (int i = 0; i < nin; i++) st->inputs[i] = (lmp_binding){-1, -1, 0};
    for (int k = 0; k < st->nwires; k++) {
        lmp_setting *w = &st->wires[k];
        char *at = where(w->file, w->line);
        int in = port_index(d->consumes, w->key);
        int rc = 0;
        if (in < 0) {
            rc = lmp_error("%s: stage '%s' (%s) has no input port '%s'", at, st->name, st->type, w->key);
            goto next;
        }
        const char *want = d->consumes[in].type;
        char *src = strdupCheck(w->value), *dot = strchr(src, '.');
        if (dot) *dot = 0;
        int j;
        for (j = si - 1; j >= 0 && strcmp(p->stages[j].name, src) != 0; j--) {}
        if (j < 0) {
            rc = lmp_error("%s: stage '%s': @%s=%s: no earlier stage named '%s'", at, st->name, w->key,
                           w->value, src);
        } else {
            const lmp_port *prod = p->stages[j].entry->def->produces;
            int op = dot ? port_index(prod, dot + 1) : -1;
            if (dot && op < 0)
                rc = lmp_error("%s: stage '%s': @%s=%s: stage '%s' has no output port '%s'", at, st->name,
                               w->key, w->value, src, dot + 1);
            if (!dot)
                for (int q = 0; prod && prod[q].name && op < 0; q++)
                    if (strcmp(prod[q].type, want) == 0) op = q;
            if (rc == 0 && (op < 0 || strcmp(prod[op].type, want) != 0))
                rc = lmp_error("%s: stage '%s': input '%s' takes a '%s' artifact, but stage '%s' (%s) %s", at,
                               st->name, w->key, want, src, p->stages[j].type,
                               op < 0 ? "produces none" : "produces another type there");
            if (rc == 0) st->inputs[in] = (lmp_binding){j, op, 0};
        }
        free(src);
    next:
        free(at);
        if (rc != 0) return -1;
    }
    for (int i = 0; i < nin; i++) {
        if (st->inputs[i].stage >= 0) continue;
        const lmp_port *in = &d->consumes[i];
        for (int j = si - 1; j >= 0 && st->inputs[i].stage < 0; j--) {
            const lmp_port *prod = p->stages[j].entry->def->produces;
            for (int q = 0; prod && prod[q].name; q++)
                if (strcmp(prod[q].type, in->type) == 0) st->inputs[i] = (lmp_binding){j, q, 1};
        }
        if (st->inputs[i].stage < 0 && !in->optional) {
            char *at = where(st->file, st->line);
            lmp_error("%s: stage '%s' (%s) needs a '%s' artifact for its input '%s', but no earlier stage "
                      "produces one",
                      at, st->name, st->type, in->type, in->name);
            free(at);
            return -1;
        }
    }
    return 0;
}

int lmp_pipeline_check(lmp_pipeline *p)
{
    for (int i = 0; i < p->nstages; i++) {
        lmp_pstage *st = &p->stages[i];
        for (int k = 0; k < st->nvalues; k++) free(st->values[k].text);
        free(st->values);
        free(st->inputs);
        st->values = NULL;
        st->inputs = NULL;
        st->nvalues = 0;
        st->entry = lmp_registry_find(st->type);
        if (!st->entry) {
            const char *sug = lmp_registry_suggest(st->type);
            char *at = where(st->file, st->line);
            if (sug)
                lmp_error("%s: unknown stage type '%s'; did you mean '%s'?", at, st->type, sug);
            else
                lmp_error("%s: unknown stage type '%s' (see: lmpipe plugins; plugin path: %s)", at, st->type,
                          *lmp_registry_search_path() ? lmp_registry_search_path() : "(empty)");
            free(at);
            return -1;
        }
        if (check_params(st) != 0 || check_wiring(p, i) != 0) return -1;
        if (lmp_stage_check(st) != 0) {
            char *at = where(st->file, st->line);
            lmp_error("%s: stage '%s' (%s): %s", at, st->name, st->type, lmp_errmsg());
            free(at);
            return -1;
        }
    }
    return 0;
}
