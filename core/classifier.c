/*
 * classifier.c — the "classifier" artifact type (see classifier.h).  A
 * classifier is an object with methods; freeing it calls its destroy method.
 * Saving calls its save method (a directory); loading needs to know every
 * kind of model, so it is left to the model modules: until they provide it,
 * stages producing a classifier are not cacheable.
 */
#include "config.h"

#include "classifier.h"
#include "util.h"

static void classifier_free(void *v)
{
    lmp_classifier *c = v;
    if (c && c->destroy) c->destroy(c);
}

static int classifier_save(const void *v, const char *path)
{
    const lmp_classifier *c = v;
    if (!c->save) return lmp_error("%s: classifier kind '%s' cannot be saved", path, c->kind ? c->kind : "?");
    return c->save(c, path);
}

const lmp_type lmp_type_classifier = {"classifier", "a sequence classifier (GPT-2 with a head, RNN, ...)",
                                      classifier_free, classifier_save, NULL};
