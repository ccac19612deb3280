/*
 * tokenizer.c — the "tokenizer" artifact type (see tokenizer.h).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tokenizer.h"
#include "util.h"

static int is_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

int lmp_tokenizer_load_dir(const char *dir, lmp_tokenizer **out)
{
    *out = NULL;
    lmp_bpe *bpe;
    if (lmp_bpe_load_dir(dir, &bpe) != 0) return -1;
    /* the pair lmp_bpe_load_dir chose */
    char *v = lmp_strfmt("%s/vocab.json", dir), *m = lmp_strfmt("%s/merges.txt", dir);
    if (!is_file(v) && !is_file(m)) {
        free(v), free(m);
        v = lmp_strfmt("%s/encoder.json", dir);
        m = lmp_strfmt("%s/vocab.bpe", dir);
    }
    lmp_tokenizer *t = callocCheck(1, sizeof *t);
    t->bpe = bpe;
    t->refs = 1;
    int rc = lmp_read_file(v, 0, &t->vocab_json, &t->vocab_len);
    if (rc == 0) rc = lmp_read_file(m, 0, &t->merges_txt, &t->merges_len);
    free(v), free(m);
    if (rc != 0) {
        lmp_tokenizer_free(t);
        return -1;
    }
    lmp_sha256 h;
    lmp_sha256_init(&h);
    lmp_sha256_update(&h, "vocab.json", 11);
    lmp_sha256_update(&h, t->vocab_json, t->vocab_len);
    lmp_sha256_update(&h, "merges.txt", 11);
    lmp_sha256_update(&h, t->merges_txt, t->merges_len);
    lmp_sha256_final(&h, t->digest);
    *out = t;
    return 0;
}

int lmp_tokenizer_save_dir(const lmp_tokenizer *t, const char *dir)
{
    if (lmp_mkdirs(dir) != 0) return -1;
    char *v = lmp_strfmt("%s/vocab.json", dir), *m = lmp_strfmt("%s/merges.txt", dir);
    int rc = lmp_write_file_atomic(v, t->vocab_json, t->vocab_len);
    if (rc == 0) rc = lmp_write_file_atomic(m, t->merges_txt, t->merges_len);
    free(v), free(m);
    return rc;
}

lmp_tokenizer *lmp_tokenizer_ref(lmp_tokenizer *t)
{
    t->refs++;
    return t;
}

void lmp_tokenizer_free(void *p)
{
    lmp_tokenizer *t = p;
    if (!t || --t->refs > 0) return;
    lmp_bpe_free(t->bpe);
    free(t->vocab_json);
    free(t->merges_txt);
    free(t);
}

static int tok_save(const void *v, const char *path) { return lmp_tokenizer_save_dir(v, path); }

static int tok_load(const char *path, void **v)
{
    lmp_tokenizer *t;
    if (lmp_tokenizer_load_dir(path, &t) != 0) return -1;
    *v = t;
    return 0;
}

const lmp_type lmp_type_tokenizer = {
    "tokenizer", "a byte-level BPE vocabulary (vocab.json + merges.txt)", lmp_tokenizer_free,
    tok_save, tok_load,
};
