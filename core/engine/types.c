/*
 * types.c — the registry of artifact types, and the engine's own type
 * "text".  The kit's types (datasets, tokenizers, language models,
 * classifiers) are added as built-ins by core/kit/kit_types.c when the
 * library loads; plugins register theirs when they load.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "types.h"
#include "util.h"

#define MAX_TYPES 128
static const lmp_type *types[MAX_TYPES];
static int n_types;

int lmp_type_register(const lmp_type *t)
{
    if (!t || !t->name || !*t->name) return lmp_error("artifact type without a name");
    for (int i = 0; i < n_types; i++) {
        if (types[i] == t) return 0;
        if (strcmp(types[i]->name, t->name) == 0)
            return lmp_error("artifact type '%s' is already registered", t->name);
    }
    if (n_types == MAX_TYPES) return lmp_error("too many artifact types");
    types[n_types++] = t;
    return 0;
}

const lmp_type *lmp_type_find(const char *name)
{
    lmp_types_init();
    for (int i = 0; i < n_types; i++)
        if (strcmp(types[i]->name, name) == 0) return types[i];
    return NULL;
}

int lmp_type_count(void) { return n_types; }
const lmp_type *lmp_type_at(int i) { return i >= 0 && i < n_types ? types[i] : NULL; }

/* ---- text: a NUL-terminated string (generated text, a report path, ...) */

static void text_free(void *v) { free(v); }

static int text_save(const void *v, const char *path)
{
    return lmp_write_file_atomic(path, v, strlen(v));
}

static int text_load(const char *path, void **v)
{
    char *data;
    size_t n;
    if (lmp_read_file(path, 0, &data, &n) != 0) return -1;
    *v = data;
    return 0;
}

const lmp_type lmp_type_text = {"text", "a UTF-8 string", text_free, text_save, text_load};

/* The types every registry starts with (and returns to when plugins go):
 * "text", then what the library's layers above added at load time. */
#define MAX_BUILTIN 16
static const lmp_type *builtin[MAX_BUILTIN] = {&lmp_type_text};
static int n_builtin = 1;
static int done;

void lmp_type_add_builtin(const lmp_type *t)
{
    for (int i = 0; i < n_builtin; i++)
        if (builtin[i] == t) return;
    if (n_builtin == MAX_BUILTIN) {
        fprintf(stderr, "lmpipe: bug: more than %d built-in artifact types\n", MAX_BUILTIN);
        abort();
    }
    builtin[n_builtin++] = t;
}

void lmp_types_reset(void)
{
    n_types = 0;
    done = 0;
}

void lmp_types_init(void)
{
    if (done) return;
    done = 1;
    for (int i = 0; i < n_builtin; i++) lmp_type_register(builtin[i]);
}
