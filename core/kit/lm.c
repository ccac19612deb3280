/*
 * lm.c — the "lm" artifact type (see lm.h): an lm of any registered family,
 * saved and loaded with its tokenizer.
 */
#include "config.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "jsonfile.h"
#include "lm.h"
#include "util.h"

/* Filled by the families themselves (LMP_LM_FAMILY). */
#define MAX_FAMILIES 16
static struct {
    const char *family;
    lmp_lm_loader load;
} families[MAX_FAMILIES];
static int n_families;

int lmp_lm_family_register(const char *family, lmp_lm_loader load)
{
    for (int i = 0; i < n_families; i++)
        if (strcmp(families[i].family, family) == 0) {
            if (families[i].load == load) return 0;
            return lmp_error("language-model family '%s' is already registered", family);
        }
    if (n_families == MAX_FAMILIES) return lmp_error("too many language-model families");
    families[n_families].family = family;
    families[n_families++].load = load;
    return 0;
}

lmp_lm *lmp_lm_new(const lmp_lm_ops *ops, void *impl, lmp_tokenizer *tok)
{
    lmp_lm *lm = callocCheck(1, sizeof *lm);
    lm->ops = ops;
    lm->impl = impl;
    lm->tok = tok;
    return lm;
}

int lmp_lm_save(const void *p, const char *dir)
{
    const lmp_lm *lm = p;
    if (lm->ops->save(lm, dir) != 0) return -1; /* creates dir */
    return lmp_tokenizer_save_dir(lm->tok, dir);
}

/* DIR/config.json's model_type, or NULL with an error naming the file. */
static char *model_type(const char *dir)
{
    char *path = lmp_strfmt("%s/config.json", dir), *type = NULL;
    json_t *root = NULL;
    if (lmp_json_read_file(path, 1 << 20, 0, NULL, &root) == 0) {
        const char *t = json_string_value(json_object_get(root, "model_type"));
        if (!t) lmp_error("%s: no \"model_type\" string", path);
        else type = strdupCheck(t);
    }
    json_decref(root);
    free(path);
    return type;
}

int lmp_lm_load(const char *dir, void **out)
{
    *out = NULL;
    lmp_tokenizer *tok;
    if (lmp_tokenizer_load_dir(dir, &tok) != 0) return -1;
    char *type = model_type(dir);
    int rc = -1, found = 0;
    for (int i = 0; type && i < n_families && !found; i++)
        if (strcmp(families[i].family, type) == 0) {
            lmp_lm *lm;
            found = 1;
            if ((rc = families[i].load(dir, tok, &lm)) == 0) *out = lm;
        }
    if (type && !found)
        lmp_error("%s/config.json: unknown language-model family \"%s\" (is its plugin loaded?)", dir, type);
    if (rc != 0) lmp_tokenizer_free(tok);
    free(type);
    return rc;
}

void lmp_lm_free(void *p)
{
    lmp_lm *lm = p;
    if (!lm) return;
    if (lm->impl) lm->ops->free(lm);
    lmp_tokenizer_free(lm->tok);
    free(lm);
}

const lmp_type lmp_type_lm = {
    "lm", "a language model (GPT-2, ...) and its tokenizer (HF folder)", lmp_lm_free, lmp_lm_save,
    lmp_lm_load,
};
