/*
 * classifier.c — the "classifier" artifact type (see classifier.h).  A
 * classifier is an object with methods: freeing it calls its destroy method,
 * saving its save method (a directory with classifier.json naming the kind);
 * loading reads the kind and calls the loader registered for it.  The
 * kinds register themselves (classifier.h, LMP_CLASSIFIER_KIND).
 */
#include "config.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "classifier.h"
#include "jsonfile.h"
#include "util.h"

/* Filled by the kinds themselves (LMP_CLASSIFIER_KIND in their own files,
 * the core's and the plugins' alike): this file names none of them. */
#define MAX_KINDS 16
static struct {
    const char *kind;
    lmp_classifier_loader load;
} kinds[MAX_KINDS];
static int n_kinds;

int lmp_classifier_kind_register(const char *kind, lmp_classifier_loader load)
{
    for (int i = 0; i < n_kinds; i++)
        if (strcmp(kinds[i].kind, kind) == 0) {
            if (kinds[i].load == load) return 0;
            return lmp_error("classifier kind '%s' is already registered", kind);
        }
    if (n_kinds == MAX_KINDS) return lmp_error("too many classifier kinds");
    kinds[n_kinds].kind = kind;
    kinds[n_kinds++].load = load;
    return 0;
}

int lmp_classifier_load(const char *dir, lmp_classifier **out)
{
    *out = NULL;
    char *path = lmp_strfmt("%s/classifier.json", dir);
    int rc = -1;
    json_t *root = NULL;
    if (lmp_json_read_file(path, 1 << 20, 0, NULL, &root) != 0) goto done;
    const char *kind = json_string_value(json_object_get(root, "kind"));
    if (!kind) {
        lmp_error("%s: no \"kind\" string", path);
        goto done;
    }
    for (int i = 0; i < n_kinds; i++)
        if (strcmp(kinds[i].kind, kind) == 0) {
            rc = kinds[i].load(dir, out);
            goto done;
        }
    lmp_error("%s: unknown classifier kind \"%s\" (is its plugin loaded?)", path, kind);
done:
    json_decref(root);
    free(path);
    return rc;
}

static void cls_free(void *v)
{
    lmp_classifier *c = v;
    if (c && c->destroy) c->destroy(c);
}

static int cls_save(const void *v, const char *path)
{
    const lmp_classifier *c = v;
    if (!c->save) return lmp_error("%s: classifier kind '%s' cannot be saved", path, c->kind ? c->kind : "?");
    return c->save(c, path);
}

static int cls_load(const char *path, void **v)
{
    lmp_classifier *c;
    if (lmp_classifier_load(path, &c) != 0) return -1;
    *v = c;
    return 0;
}

const lmp_type lmp_type_classifier = { "classifier", "a sequence classifier (GPT-2 with a head, RNN, ...)",
                                       cls_free, cls_save, cls_load };
