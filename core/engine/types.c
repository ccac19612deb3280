/*
 * types.c — the registry of artifact types, and the core's own simple types.
 * Model-specific types (datasets, tokenizers, language models, classifiers)
 * are registered by the core modules that define their data structures.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "classifier.h"
#include "dataset.h"
#include "lm.h"
#include "tokenizer.h"
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

static const lmp_type *const builtin[] = {&lmp_type_text, &lmp_type_tokenizer, &lmp_type_dataset,
                                          &lmp_type_classifier, &lmp_type_lm, NULL};

static int done;

void lmp_types_reset(void)
{
    n_types = 0;
    done = 0;
}

void lmp_types_init(void)
{
    if (done) return;
    done = 1;
    for (int i = 0; builtin[i]; i++) lmp_type_register(builtin[i]);
}
