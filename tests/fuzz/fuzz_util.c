/*
 * fuzz_util.c — scratch files, source-tree paths and property failures for
 * the fuzz targets (see fuzz.h).
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "util.h"

static char *scratch;

static void remove_scratch(void)
{
    if (!scratch) return;
    char *cmd = lmp_strfmt("rm -rf '%s'", scratch);
    if (system(cmd) != 0) fprintf(stderr, "fuzz: cannot remove %s\n", scratch);
    free(cmd);
    free(scratch);
    scratch = NULL;
}

const char *fuzz_dir(void)
{
    if (scratch) return scratch;
    const char *tmp = getenv("TMPDIR");
    char *templ = lmp_strfmt("%s/lmp_fuzz.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(templ)) {
        perror(templ);
        abort();
    }
    scratch = templ;
    atexit(remove_scratch);
    return scratch;
}

/* One path per name, kept for the life of the process. */
static struct {
    char *name, *path;
} files[16];

const char *fuzz_file(const char *name, const void *data, size_t size)
{
    int i;
    for (i = 0; i < 16 && files[i].name && strcmp(files[i].name, name) != 0; i++) {}
    if (i == 16) abort();
    if (!files[i].name) {
        files[i].name = strdupCheck(name);
        files[i].path = lmp_strfmt("%s/%s", fuzz_dir(), name);
    }
    /* a plain rewrite: the targets read the file, nothing here needs to be atomic */
    FILE *f = fopen(files[i].path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(files[i].path);
        abort();
    }
    return files[i].path;
}

const char *fuzz_srcfile(const char *rel)
{
    static char *paths[16];
    static const char *rels[16];
    int i;
    for (i = 0; i < 16 && rels[i] && strcmp(rels[i], rel) != 0; i++) {}
    if (i == 16) abort();
    if (!rels[i]) {
        const char *top = getenv("top_srcdir");
        rels[i] = rel;
        paths[i] = lmp_strfmt("%s/%s", top && *top ? top : LMP_SRCDIR, rel);
    }
    return paths[i];
}

void fuzz_fail(const char *target, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_%s: property violated: ", target);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

void fuzz_clear_error(void) { lmp_error("%s", ""); }

void fuzz_check_errmsg(const char *target)
{
    const char *m = lmp_errmsg();
    if (!*m) fuzz_fail(target, "a call failed without an error message");
    if (strchr(m, '\n')) fuzz_fail(target, "error message is not one line: %s", m);
}
